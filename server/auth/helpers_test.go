package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Fixed refs and clock shared by the tests.
const (
	entA     = "enterprises/aaaaaaaa-0000-4000-8000-000000000001"
	entB     = "enterprises/bbbbbbbb-0000-4000-8000-000000000002"
	cliA1    = "clients/aaaaaaaa-1111-4000-8000-000000000001"
	cliB1    = "clients/bbbbbbbb-1111-4000-8000-000000000002"
	accA1x   = "client-accounts/aaaaaaaa-2222-4000-8000-000000000001"
	accB1x   = "client-accounts/bbbbbbbb-2222-4000-8000-000000000002"
	userSub  = "users/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
	saSub    = "service-accounts/0e0e0e0e-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
	testIss  = "https://issuer.example"
	testAud  = "exportd"
	kidRSA   = "rsa-1"
	kidEC    = "ec-1"
	kidEdJW  = "ed-jwks-1"
	kidRSA1k = "rsa-weak"
	kidOct   = "hmac-1"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// testKeyMaterial holds the JWKS-side keys; generated once because RSA generation is slow under -race.
type testKeyMaterial struct {
	rsa    *rsa.PrivateKey
	rsa1k  *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	ec384  *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
	octKey []byte
}

var testKeys = sync.OnceValue(func() *testKeyMaterial {
	must := func(err error) {
		if err != nil {
			panic("BUG: test key generation: " + err.Error())
		}
	}
	var m testKeyMaterial
	var err error
	m.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	m.rsa1k, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	m.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	m.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, m.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	m.octKey = []byte("0123456789abcdef0123456789abcdef")
	return &m
})

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	size := (k.Curve.Params().BitSize + 7) / 8
	crv := map[int]string{32: "P-256", 48: "P-384"}[size]
	return map[string]any{"kty": "EC", "kid": kid, "crv": crv,
		"x": b64(k.X.FillBytes(make([]byte, size))), "y": b64(k.Y.FillBytes(make([]byte, size)))}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
}

// standardJWKS is the JWK Set used by most tests: one usable key per family plus unusable ones.
func standardJWKS() []byte {
	m := testKeys()
	keys := []any{
		rsaJWK(kidRSA, &m.rsa.PublicKey),
		ecJWK(kidEC, &m.ec.PublicKey),
		edJWK(kidEdJW, m.ed.Public().(ed25519.PublicKey)),
		rsaJWK(kidRSA1k, &m.rsa1k.PublicKey),                                  // too short: skipped
		ecJWK("ec-384", &m.ec384.PublicKey),                                   // not P-256: skipped
		map[string]any{"kty": "oct", "kid": kidOct, "k": b64(m.octKey)},       // symmetric: skipped
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB"}, // encryption: skipped
	}
	raw, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return raw
}

// writeFile writes data to a new file in a temp dir and returns its path.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// localKey creates a signing key in a temp dir.
func localKey(t testing.TB) (path string, key ed25519.PrivateKey, kid string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "keys", "signing.pem")
	key, kid, err := LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, key, kid
}

// validClaims returns claims that every test verifier accepts.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":          userSub,
		"iss":          testIss,
		"aud":          testAud,
		"iat":          testNow.Add(-time.Minute).Unix(),
		"exp":          testNow.Add(time.Hour).Unix(),
		"capabilities": []string{CapRead, CapCreate},
		"scopes":       []map[string]string{{"target": entA, "extent": "subtree"}, {"target": cliB1}},
	}
}

// with returns a copy of c with the given claims set (a nil value deletes the claim).
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// sign signs claims with method and key; header entries override the defaults (nil deletes).
func sign(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// raw builds a token from raw header and payload JSON and a raw signature segment.
func raw(header, payload, sig string) string {
	return b64([]byte(header)) + "." + b64([]byte(payload)) + "." + sig
}

// newTestVerifier builds a verifier trusting a fresh local key and the standard JWKS file, with the
// fixed clock, issuer and audience.
func newTestVerifier(t testing.TB) (v *Verifier, key ed25519.PrivateKey, kid string) {
	t.Helper()
	path, key, kid := localKey(t)
	v, err := New(t.Context(), Config{
		SigningKeyPath: path,
		JWKS:           writeFile(t, "jwks.json", standardJWKS()),
		Issuer:         testIss,
		Audience:       testAud,
		Now:            func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, key, kid
}
