package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateSigningKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	path := filepath.Join(dir, "signing.pem")

	key, kid, err := LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := dst.Mode().Perm(); perm != 0o700 {
		t.Errorf("key dir mode %04o, want 0700", perm)
	}
	if kid != Thumbprint(key.Public().(ed25519.PublicKey)) {
		t.Errorf("kid %q is not the thumbprint", kid)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key dir holds %d entries, want only the key (no temp file left)", len(entries))
	}

	// The file is a standard PKCS#8 PEM.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("not a PRIVATE KEY PEM: %q", raw)
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatal(err)
	}

	// Second load reuses the key.
	key2, kid2, err := LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(key2) || kid != kid2 {
		t.Error("second load returned another key")
	}
}

func TestLoadOrCreateSigningKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "signing.pem")
	const n = 8
	kids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, kids[i], errs[i] = LoadOrCreateSigningKey(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if kids[i] != kids[0] {
			t.Fatalf("racing creators got different keys: %q vs %q", kids[i], kids[0])
		}
	}
}

func TestLoadSigningKeyRefuses(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})

	tests := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"world readable", goodPEM, 0o644},
		{"world writable", goodPEM, 0o602},
		{"group writable", goodPEM, 0o620},
		{"not PEM", []byte("hello"), 0o600},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), 0o600},
		{"not Ed25519", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600},
		{"corrupt DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER[:20]}), 0o600},
		{"empty", nil, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "signing.pem")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			if _, _, err := LoadOrCreateSigningKey(p); err == nil {
				t.Error("key accepted")
			}
			if got, _ := os.ReadFile(p); string(got) != string(tt.data) {
				t.Error("refused key file was modified")
			}
		})
	}

	t.Run("group readable is tolerated", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "signing.pem")
		if err := os.WriteFile(p, goodPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o440); err != nil {
			t.Fatal(err)
		}
		key, _, err := LoadOrCreateSigningKey(p)
		if err != nil {
			t.Fatal(err)
		}
		if !key.Equal(edKey) {
			t.Error("loaded another key")
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, _, err := LoadOrCreateSigningKey(t.TempDir()); err == nil {
			t.Error("directory accepted as key file")
		}
	})
	t.Run("empty path", func(t *testing.T) {
		if _, _, err := LoadOrCreateSigningKey(""); err == nil {
			t.Error("empty path accepted")
		}
	})
}

// TestThumbprintRFC8037 checks the kid derivation against RFC 8037 Appendix A.3.
func TestThumbprintRFC8037(t *testing.T) {
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Thumbprint(ed25519.PublicKey(x)), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Errorf("thumbprint %q, want %q", got, want)
	}
}
