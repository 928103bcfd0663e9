package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"
)

// Token algorithms the verifier accepts (SPEC §2). Each trusted key is bound to exactly one of them
// by its type, so a key is never used with another algorithm family.
const (
	algEdDSA = "EdDSA" // Ed25519 keys (RFC 8037)
	algRS256 = "RS256" // RSA keys of at least minRSABits
	algES256 = "ES256" // ECDSA P-256 keys
)

// allowedAlgs is the parser's allow-list; `none`, HS* and every other alg are rejected before any key
// is looked up.
var allowedAlgs = []string{algEdDSA, algRS256, algES256}

// minRSABits is the smallest RSA modulus trusted (NIST SP 800-131A: 2048 bits).
const minRSABits = 2048

// maxJWKSBytes bounds a JWKS document read from a file or a URL; real key sets are a few KiB.
const maxJWKSBytes = 1 << 20

// trustedKey is a public key bound to its one algorithm.
type trustedKey struct {
	kid string // "" when the JWK has none: then only kid-less tokens can select it
	alg string // algEdDSA, algRS256 or algES256
	key any    // ed25519.PublicKey, *rsa.PublicKey or *ecdsa.PublicKey
}

// keySet is an immutable snapshot of the trusted keys, swapped atomically on refresh.
type keySet struct {
	keys []trustedKey
}

// parseJWKS extracts the usable signature keys of a JWKS document (RFC 7517 §5). Keys that cannot
// serve EdDSA, RS256 or ES256 verification are skipped rather than failing the whole set, so an
// issuer may publish other keys (encryption keys, RSA-PSS, P-384) beside ours: symmetric ("oct") keys,
// private keys' secret halves, keys whose "use" is not "sig", whose "key_ops" lack "verify", whose
// "alg" names another algorithm, RSA keys under 2048 bits and EC keys off P-256. A document without
// any usable key is an error.
func parseJWKS(raw []byte) ([]trustedKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`decode JWKS: no "keys" array`)
	}
	var keys []trustedKey
	var firstErr error
	for i, rawKey := range doc.Keys {
		k, err := parseJWK(rawKey)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("key %d: %w", i, err)
			}
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if firstErr != nil {
			return nil, fmt.Errorf("JWKS holds no usable signature key among %d (%w)", len(doc.Keys), firstErr)
		}
		return nil, errors.New("JWKS holds no key")
	}
	return keys, nil
}

// parseJWK turns one JWK into a trusted key, or explains why it is not usable.
func parseJWK(raw json.RawMessage) (trustedKey, error) {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return trustedKey{}, fmt.Errorf("decode JWK: %w", err)
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return trustedKey{}, fmt.Errorf("use %q is not sig", m.USE)
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return trustedKey{}, errors.New(`key_ops lacks "verify"`)
	}
	if m.KTY == jwkset.KtyOct {
		return trustedKey{}, errors.New("symmetric key") // never trusted: HS* would be forgeable by anyone who reads the JWKS
	}
	// Private: false makes jwkset ignore any private members ("d", ...) a careless JWKS might carry.
	// GetX5U stays nil, so validation never fetches anything.
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return trustedKey{}, err
	}
	k := trustedKey{kid: m.KID, key: jwk.Key()}
	switch pub := k.key.(type) {
	case ed25519.PublicKey:
		k.alg = algEdDSA
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return trustedKey{}, fmt.Errorf("RSA key of %d bits, want at least %d", pub.N.BitLen(), minRSABits)
		}
		k.alg = algRS256
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return trustedKey{}, fmt.Errorf("EC curve %s, want P-256", pub.Curve.Params().Name)
		}
		k.alg = algES256
	default:
		return trustedKey{}, fmt.Errorf("key type %T cannot verify signatures", k.key)
	}
	if a := string(m.ALG); a != "" && a != k.alg && !(k.alg == algEdDSA && a == "Ed25519") {
		return trustedKey{}, fmt.Errorf("alg %q is not %s", a, k.alg)
	}
	return k, nil
}

// jwksSource says where a Config.JWKS value points: a URL (http or https) or a local file.
type jwksSource struct {
	url  *url.URL // non-nil for http(s)
	path string   // set for a file (plain path or file:// URL)
}

// parseJWKSSource interprets Config.JWKS.
func parseJWKSSource(s string) (jwksSource, error) {
	switch {
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil {
			return jwksSource{}, fmt.Errorf("parse JWKS URL: %w", err)
		}
		if u.Host == "" {
			return jwksSource{}, errors.New("parse JWKS URL: no host")
		}
		// Keys fetched in clear text could be swapped on the way: https
		// only, loopback excepted (a sidecar, tests).
		if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			return jwksSource{}, errors.New("JWKS URL: want https:// (http:// only for a loopback address)")
		}
		return jwksSource{url: u}, nil
	case strings.HasPrefix(s, "file://"):
		u, err := url.Parse(s)
		if err != nil {
			return jwksSource{}, fmt.Errorf("parse JWKS URL: %w", err)
		}
		if u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return jwksSource{}, fmt.Errorf("JWKS URL %q: want file:///absolute/path", s)
		}
		return jwksSource{path: u.Path}, nil
	case strings.Contains(s, "://"):
		return jwksSource{}, errors.New("JWKS: want a file path or an http(s) URL")
	}
	return jwksSource{path: s}, nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String names the source for errors and logs without query string or credentials.
func (s jwksSource) String() string {
	if s.url != nil {
		return s.url.Scheme + "://" + s.url.Host + s.url.Path
	}
	return s.path
}

// readJWKSFile reads a JWKS document from a file, at most maxJWKSBytes.
func readJWKSFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open JWKS %q: %w", path, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read JWKS %q: %w", path, err)
	}
	if len(raw) > maxJWKSBytes {
		return nil, fmt.Errorf("read JWKS %q: larger than %d bytes", path, maxJWKSBytes)
	}
	return raw, nil
}

// fetchJWKS GETs a JWKS document; the caller bounds ctx. Only 200 is accepted, at most maxJWKSBytes.
func fetchJWKS(ctx context.Context, client *http.Client, src jwksSource) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS %s: %w", src, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the whole URL (query included): keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("fetch JWKS %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		return nil, fmt.Errorf("fetch JWKS %s: status %d", src, resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS %s: read body: %w", src, err)
	}
	if len(raw) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch JWKS %s: body larger than %d bytes", src, maxJWKSBytes)
	}
	return raw, nil
}
