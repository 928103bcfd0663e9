package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxKeyFileBytes bounds what LoadOrCreateSigningKey reads: a PKCS#8 Ed25519 PEM is about 120 bytes.
const maxKeyFileBytes = 64 << 10

// pemTypePrivateKey is the PEM block type of a PKCS#8 private key (RFC 7468 §10).
const pemTypePrivateKey = "PRIVATE KEY"

// LoadOrCreateSigningKey returns the local Ed25519 signing key stored at path and its key id, creating
// the key first if the file does not exist.
//
// The file is a PEM "PRIVATE KEY" block holding PKCS#8 (`openssl genpkey -algorithm ed25519` writes
// the same). A new key is written with mode 0600, missing parent directories with 0700, through a
// temporary file that is synced and then hard-linked into place, so a crash never leaves a truncated
// key and two processes racing to create it end up sharing the winner's key.
//
// An existing file that others may read or anyone but its owner may write (mode & 0o027 != 0) is
// refused: the key mints tokens with every capability. Group read is tolerated because Kubernetes
// secret volumes with an fsGroup are mounted 0440.
//
// The kid is the RFC 7638 JWK thumbprint of the public key (see [Thumbprint]), so the same key
// published in a JWKS under its thumbprint is recognised as the same key.
func LoadOrCreateSigningKey(path string) (key ed25519.PrivateKey, kid string, err error) {
	if path == "" {
		return nil, "", errors.New("load signing key: empty path")
	}
	key, err = loadSigningKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createSigningKey(path)
	}
	if err != nil {
		return nil, "", err
	}
	return key, Thumbprint(key.Public().(ed25519.PublicKey)), nil
}

// loadSigningKey reads and parses the key at path; the error wraps fs.ErrNotExist when it is absent.
func loadSigningKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open signing key %q: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat signing key %q: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("signing key %q is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o027 != 0 {
		return nil, fmt.Errorf("signing key %q has mode %04o: it must not be readable by others nor writable by group or others (chmod 600)", path, perm)
	}
	// Owned by this user or by root (a Kubernetes Secret mount), in a
	// directory others cannot write to: else someone else could read or
	// swap the key that mints every token.
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() && sys.Uid != 0 {
		return nil, fmt.Errorf("signing key %q is owned by uid %d, not by this user (%d) or root", path, sys.Uid, os.Geteuid())
	}
	if dst, err := os.Stat(filepath.Dir(path)); err == nil && dst.Mode().Perm()&0o002 != 0 && dst.Mode()&os.ModeSticky == 0 {
		return nil, fmt.Errorf("signing key directory %q is writable by others (mode %04o): anyone could replace the key", filepath.Dir(path), dst.Mode().Perm())
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read signing key %q: %w", path, err)
	}
	if len(raw) > maxKeyFileBytes {
		return nil, fmt.Errorf("signing key %q is larger than %d bytes", path, maxKeyFileBytes)
	}
	key, err := parseSigningKey(raw)
	if err != nil {
		return nil, fmt.Errorf("parse signing key %q: %w", path, err)
	}
	return key, nil
}

// parseSigningKey decodes the first PEM block of raw as a PKCS#8 Ed25519 private key.
func parseSigningKey(raw []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("PEM block type %q, want %q (PKCS#8)", block.Type, pemTypePrivateKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("decode PKCS#8: %w", err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key type %T, want Ed25519", parsed)
	}
	return key, nil
}

// createSigningKey generates a key and publishes it at path without ever overwriting an existing
// file; if another process created path first, its key is loaded and returned instead.
func createSigningKey(path string) (ed25519.PrivateKey, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create signing key directory %q: %w", dir, err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der})

	tmp, err := os.CreateTemp(dir, ".signing-key-*.tmp") // created 0600
	if err != nil {
		return nil, fmt.Errorf("create signing key %q: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("chmod signing key %q: %w", tmpName, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key %q: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync signing key %q: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close signing key %q: %w", tmpName, err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadSigningKey(path) // lost the race: use the key the other process wrote
		}
		return nil, fmt.Errorf("publish signing key %q: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the new name durable; best effort
		_ = d.Sync()
		d.Close()
	}
	return key, nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of an Ed25519
// public key: the kid of the local signing key.
func Thumbprint(pub ed25519.PublicKey) string {
	// RFC 7638 §3.2 and RFC 8037 §2: required members crv, kty, x in lexicographic order, no spaces.
	doc := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(doc))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
