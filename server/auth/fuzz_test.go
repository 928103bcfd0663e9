package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify checks that Verify never panics and accepts only tokens that are genuinely valid: an
// EdDSA signature by the trusted key over the first two segments, and claims that pass an
// independent check.
func FuzzVerify(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)) // stable, so seeds stay valid
	pub := key.Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "signing.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		f.Fatal(err)
	}
	v, err := New(f.Context(), Config{SigningKeyPath: path, Now: func() time.Time { return testNow }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { v.Close() })
	kid := Thumbprint(pub)

	good, err := Mint(key, kid, Claims{Sub: userSub, Capabilities: []string{CapRead}, Scopes: []Scope{{Target: entA, Extent: ExtentSubtree}}}, time.Hour, testNow)
	if err != nil {
		f.Fatal(err)
	}
	expired, err := Mint(key, kid, Claims{Sub: saSub}, -time.Hour, testNow)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(expired)
	f.Add(sign(f, jwt.SigningMethodEdDSA, key, nil, validClaims()))
	f.Add(raw(`{"alg":"none"}`, `{"sub":"`+userSub+`","exp":9999999999}`, ""))
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(pub), map[string]any{"kid": kid}, validClaims()))
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add("a.b.c")
	f.Add("")

	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err != nil {
			if p != nil || Reason(err) == "" {
				t.Fatalf("rejection without a reason or with a principal: %v", err)
			}
			return
		}
		if msg := genuinelyValid(token, pub); msg != "" {
			t.Fatalf("accepted an invalid token (%s): %q", msg, token)
		}
		if !ValidSubject(p.Subject) {
			t.Fatalf("accepted subject %q", p.Subject)
		}
		for _, s := range p.Scopes {
			if s.validate() != nil {
				t.Fatalf("accepted scope %+v", s)
			}
		}
	})
}

// genuinelyValid re-checks an accepted token without the JWT library; it returns "" when valid.
func genuinelyValid(token string, pub ed25519.PublicKey) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "segments"
	}
	enc := base64.RawURLEncoding.Strict()
	hdr, err1 := enc.DecodeString(parts[0])
	payload, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "base64"
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "EdDSA" {
		return "alg"
	}
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return "signature"
	}
	var c struct {
		Exp *float64 `json:"exp"`
		Nbf *float64 `json:"nbf"`
	}
	if json.NewDecoder(bytes.NewReader(payload)).Decode(&c) != nil {
		return "payload"
	}
	leeway := defaultLeeway.Seconds()
	now := float64(testNow.Unix())
	if c.Exp == nil || *c.Exp+leeway < now {
		return "exp"
	}
	if c.Nbf != nil && *c.Nbf-leeway > now {
		return "nbf"
	}
	return ""
}
