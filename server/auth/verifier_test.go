package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyRejects(t *testing.T) {
	v, key, kid := newTestVerifier(t)
	m := testKeys()
	local := map[string]any{"kid": kid}
	good := sign(t, jwt.SigningMethodEdDSA, key, local, validClaims())
	parts := strings.Split(good, ".")

	_, attacker, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubBytes := []byte(key.Public().(ed25519.PublicKey))
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustMarshalPKIX(t, &m.rsa.PublicKey)})

	// A signature segment with one character changed in the middle (the last one may only flip
	// padding bits, which strict decoding reports as malformed instead).
	flipped := []byte(parts[2])
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	// The payload of another subject under the original signature.
	tampered := parts[0] + "." + b64([]byte(`{"sub":"`+saSub+`","exp":9999999999,"iss":"`+testIss+`","aud":"`+testAud+`"}`)) + "." + parts[2]

	validJSON := `{"sub":"` + userSub + `","exp":` + itoa(testNow.Add(time.Hour).Unix()) + `,"iss":"` + testIss + `","aud":"` + testAud + `"}`

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"empty", "", ReasonMissing},
		{"oversized", strings.Repeat("a", MaxTokenBytes-10) + "." + strings.Repeat("b", 10) + "." + "c", ReasonOversized},
		{"garbage", "not a token", ReasonMalformed},
		{"bearer prefix left in", "Bearer " + good, ReasonMalformed},
		{"one dot", parts[0] + "." + parts[1], ReasonMalformed},
		{"two dots, empty segments", "..", ReasonMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", ReasonMalformed},
		{"four segments", good + ".x", ReasonMalformed},
		{"padding", good + "=", ReasonMalformed},
		{"standard base64 alphabet", strings.Replace(good, "_", "/", 1) + "+", ReasonMalformed},
		{"header not JSON", b64([]byte("xx")) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"payload not JSON", parts[0] + "." + b64([]byte("{")) + "." + parts[2], ReasonMalformed},
		{"alg none, empty sig", raw(`{"alg":"none","typ":"JWT"}`, validJSON, ""), ReasonMalformed},
		{"alg none, some sig", raw(`{"alg":"none","typ":"JWT"}`, validJSON, "AAAA"), ReasonAlgorithm},
		{"alg None", raw(`{"alg":"None"}`, validJSON, "AAAA"), ReasonAlgorithm},
		{"alg missing", raw(`{"typ":"JWT","kid":"`+kid+`"}`, validJSON, "AAAA"), ReasonAlgorithm},
		{"alg unknown", raw(`{"alg":"XY999","kid":"`+kid+`"}`, validJSON, "AAAA"), ReasonAlgorithm},
		{"HS256 with Ed25519 public key bytes", sign(t, jwt.SigningMethodHS256, pubBytes, local, validClaims()), ReasonAlgorithm},
		{"HS256 with RSA public key PEM", sign(t, jwt.SigningMethodHS256, rsaPubPEM, map[string]any{"kid": kidRSA}, validClaims()), ReasonAlgorithm},
		{"HS256 with JWKS oct key", sign(t, jwt.SigningMethodHS256, m.octKey, map[string]any{"kid": kidOct}, validClaims()), ReasonAlgorithm},
		{"RS256 header on local Ed25519 kid", sign(t, jwt.SigningMethodRS256, m.rsa, local, validClaims()), ReasonAlgorithm},
		{"ES256 header on RSA kid", sign(t, jwt.SigningMethodES256, m.ec, map[string]any{"kid": kidRSA}, validClaims()), ReasonAlgorithm},
		{"EdDSA header on EC kid", sign(t, jwt.SigningMethodEdDSA, m.ed, map[string]any{"kid": kidEC}, validClaims()), ReasonAlgorithm},
		{"RS512 not allowed", sign(t, jwt.SigningMethodRS512, m.rsa, map[string]any{"kid": kidRSA}, validClaims()), ReasonAlgorithm},
		{"PS256 not allowed", sign(t, jwt.SigningMethodPS256, m.rsa, map[string]any{"kid": kidRSA}, validClaims()), ReasonAlgorithm},
		{"ES384 not allowed", sign(t, jwt.SigningMethodES384, m.ec384, map[string]any{"kid": "ec-384"}, validClaims()), ReasonAlgorithm},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": "nope"}, validClaims()), ReasonUnknownKey},
		{"kid of a skipped RSA-1024 key", sign(t, jwt.SigningMethodRS256, m.rsa1k, map[string]any{"kid": kidRSA1k}, validClaims()), ReasonUnknownKey},
		{"kid not a string", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": 7}, validClaims()), ReasonMalformed},
		{"kid empty", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": ""}, validClaims()), ReasonMalformed},
		{"kid-less EdDSA with two trusted Ed25519 keys", sign(t, jwt.SigningMethodEdDSA, key, nil, validClaims()), ReasonUnknownKey},
		{"embedded jwk header with attacker key", sign(t, jwt.SigningMethodEdDSA, attacker, map[string]any{"kid": "evil", "jwk": edJWK("evil", attacker.Public().(ed25519.PublicKey))}, validClaims()), ReasonUnknownKey},
		{"jku header pointing elsewhere", sign(t, jwt.SigningMethodEdDSA, attacker, map[string]any{"kid": "evil", "jku": "https://evil.example/jwks"}, validClaims()), ReasonUnknownKey},
		{"attacker key with local kid", sign(t, jwt.SigningMethodEdDSA, attacker, local, validClaims()), ReasonSignature},
		{"attacker RSA key with JWKS RSA kid", sign(t, jwt.SigningMethodRS256, m.rsa1k, map[string]any{"kid": kidRSA}, validClaims()), ReasonSignature},
		{"signature changed", parts[0] + "." + parts[1] + "." + string(flipped), ReasonSignature},
		{"payload tampered", tampered, ReasonSignature},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", saSub)), ".")[2], ReasonSignature},
		{"crit header", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid, "crit": []string{"exp"}}, validClaims()), ReasonClaims},
		{"expired", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "exp", testNow.Add(-time.Minute).Unix())), ReasonExpired},
		{"expired beyond leeway", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "exp", testNow.Add(-31*time.Second).Unix())), ReasonExpired},
		{"exp missing", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "exp", nil)), ReasonExpired},
		{"exp a string", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "exp", "tomorrow")), ReasonMalformed},
		{"nbf in the future", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "nbf", testNow.Add(time.Minute).Unix())), ReasonNotYetValid},
		{"iat in the future beyond leeway", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "iat", testNow.Add(time.Minute).Unix())), ReasonNotYetValid},
		{"wrong iss", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "iss", "https://other.example")), ReasonIssuer},
		{"iss missing", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "iss", nil)), ReasonIssuer},
		{"wrong aud", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "aud", "other")), ReasonAudience},
		{"wrong aud list", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "aud", []string{"a", "b"})), ReasonAudience},
		{"aud missing", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "aud", nil)), ReasonAudience},
		{"sub missing", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", nil)), ReasonSubject},
		{"sub uppercase UUID", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", strings.ToUpper(userSub[:6])+userSub[6:])), ReasonSubject},
		{"sub uppercase hex", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", "users/B8E2F1A0-4C3D-4E5F-9A1B-2C3D4E5F6A7B")), ReasonSubject},
		{"sub other kind", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", "admins/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b")), ReasonSubject},
		{"sub braces UUID", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", "users/{b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b}")), ReasonSubject},
		{"sub trailing junk", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", userSub+"/x")), ReasonSubject},
		{"sub not a string", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "sub", 1)), ReasonMalformed},
		{"capabilities not an array", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "capabilities", CapRead)), ReasonMalformed},
		{"capability not a string", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "capabilities", []any{CapRead, 1})), ReasonMalformed},
		{"capability empty", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "capabilities", []string{""})), ReasonClaims},
		{"capability with space", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "capabilities", []string{"operations_reports. read"})), ReasonClaims},
		{"capability too long", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "capabilities", []string{strings.Repeat("c", 129)})), ReasonClaims},
		{"scopes not an array", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", entA)), ReasonMalformed},
		{"scope a string", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", []string{entA})), ReasonMalformed},
		{"scope target missing", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", []map[string]string{{"extent": "subtree"}})), ReasonClaims},
		{"scope target not a UUID", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", []map[string]string{{"target": "enterprises/acme"}})), ReasonClaims},
		{"scope target master account", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", []map[string]string{{"target": "master-accounts/aaaaaaaa-0000-4000-8000-000000000001"}})), ReasonClaims},
		{"scope target wildcard", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", []map[string]string{{"target": "enterprises/*", "extent": "subtree"}})), ReasonClaims},
		{"scope extent unknown", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", []map[string]string{{"target": entA, "extent": "everything"}})), ReasonClaims},
		{"scope extent wrong case", sign(t, jwt.SigningMethodEdDSA, key, local, with(validClaims(), "scopes", []map[string]string{{"target": entA, "extent": "Subtree"}})), ReasonClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(tt.token)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if p != nil {
				t.Errorf("principal %+v returned with error", p)
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("error %v does not wrap ErrUnauthorized", err)
			}
			if got := Reason(err); got != tt.reason {
				t.Errorf("reason %q, want %q (error: %v)", got, tt.reason, err)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	v, key, kid := newTestVerifier(t)
	m := testKeys()
	tests := []struct {
		name   string
		token  string
		sub    string
		scopes []Scope
	}{
		{"local EdDSA", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, validClaims()), userSub, nil},
		{"JWKS RS256", sign(t, jwt.SigningMethodRS256, m.rsa, map[string]any{"kid": kidRSA}, validClaims()), userSub, nil},
		{"JWKS ES256", sign(t, jwt.SigningMethodES256, m.ec, map[string]any{"kid": kidEC}, validClaims()), userSub, nil},
		{"JWKS EdDSA", sign(t, jwt.SigningMethodEdDSA, m.ed, map[string]any{"kid": kidEdJW}, validClaims()), userSub, nil},
		{"kid-less RS256, one RSA key", sign(t, jwt.SigningMethodRS256, m.rsa, nil, validClaims()), userSub, nil},
		{"kid-less ES256, one P-256 key", sign(t, jwt.SigningMethodES256, m.ec, nil, validClaims()), userSub, nil},
		{"typ at+jwt and extra header", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid, "typ": "at+jwt", "x-extra": 1}, validClaims()), userSub, nil},
		{"service account", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "sub", saSub)), saSub, nil},
		{"expired within leeway", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "exp", testNow.Add(-20*time.Second).Unix())), userSub, nil},
		{"nbf within leeway", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "nbf", testNow.Add(20*time.Second).Unix())), userSub, nil},
		{"iat within leeway", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "iat", testNow.Add(20*time.Second).Unix())), userSub, nil},
		{"iat absent", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "iat", nil)), userSub, nil},
		{"aud among several", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "aud", []string{"other", testAud})), userSub, nil},
		{"unknown claims ignored", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "jti", "x", "roles", []int{1})), userSub, nil},
		{"no capabilities, no scopes", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "capabilities", nil, "scopes", nil)), userSub, []Scope{}},
		{"extent omitted is perimeter", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "scopes", []map[string]string{{"target": entA}, {"target": accA1x, "extent": "subtree"}})), userSub,
			[]Scope{{entA, ExtentPerimeter}, {accA1x, ExtentSubtree}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(tt.token)
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if p.Subject != tt.sub {
				t.Errorf("subject %q, want %q", p.Subject, tt.sub)
			}
			if tt.scopes != nil && !slices.Equal(p.Scopes, tt.scopes) {
				t.Errorf("scopes %+v, want %+v", p.Scopes, tt.scopes)
			}
		})
	}

	p, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, validClaims()))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Can(CapRead) || !p.Can(CapCreate) || p.Can("operations_reports.delete") || p.Can("") {
		t.Errorf("capabilities %v", p.Capabilities)
	}
	want := []Scope{{entA, ExtentSubtree}, {cliB1, ExtentPerimeter}}
	if !slices.Equal(p.Scopes, want) {
		t.Errorf("scopes %+v, want %+v", p.Scopes, want)
	}
}

// TestVerifyMinted checks Mint against Verify, including a negative ttl.
func TestVerifyMinted(t *testing.T) {
	path, key, kid := localKey(t)
	now := testNow
	v, err := New(t.Context(), Config{SigningKeyPath: path, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c := Claims{Sub: saSub, Capabilities: []string{CapCreate}, Scopes: []Scope{{Target: cliA1}, {Target: entB, Extent: ExtentSubtree}}}

	tok, err := Mint(key, kid, c, 15*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("minted token rejected: %v", err)
	}
	if p.Subject != saSub || !p.Can(CapCreate) || p.Can(CapRead) {
		t.Errorf("principal %+v", p)
	}
	if want := []Scope{{cliA1, ExtentPerimeter}, {entB, ExtentSubtree}}; !slices.Equal(p.Scopes, want) {
		t.Errorf("scopes %+v, want %+v", p.Scopes, want)
	}

	expired, err := Mint(key, kid, c, -time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(expired); Reason(err) != ReasonExpired {
		t.Errorf("negative ttl: %v, want expired", err)
	}

	// Issuer and audience round-trip when the verifier checks them.
	vIss, err := New(t.Context(), Config{SigningKeyPath: path, Issuer: testIss, Audience: testAud, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer vIss.Close()
	c.Issuer, c.Audience = testIss, testAud
	tok, err = Mint(key, kid, c, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vIss.Verify(tok); err != nil {
		t.Errorf("minted token with iss/aud rejected: %v", err)
	}
}

func TestMintRejectsBadClaims(t *testing.T) {
	_, key, kid := localKey(t)
	ok := Claims{Sub: userSub, Capabilities: []string{CapRead}, Scopes: []Scope{{Target: entA}}}
	tests := []struct {
		name string
		key  ed25519.PrivateKey
		kid  string
		c    Claims
		ttl  time.Duration
	}{
		{"nil key", nil, kid, ok, time.Minute},
		{"empty kid", key, "", ok, time.Minute},
		{"zero ttl", key, kid, ok, 0},
		{"bad sub", key, kid, Claims{Sub: "users/x"}, time.Minute},
		{"bad capability", key, kid, Claims{Sub: userSub, Capabilities: []string{"a b"}}, time.Minute},
		{"bad scope target", key, kid, Claims{Sub: userSub, Scopes: []Scope{{Target: "clients/x"}}}, time.Minute},
		{"bad scope extent", key, kid, Claims{Sub: userSub, Scopes: []Scope{{Target: entA, Extent: "all"}}}, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := Mint(tt.key, tt.kid, tt.c, tt.ttl, testNow); err == nil {
				t.Errorf("minted %q", tok)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no key source", Config{}},
		{"negative leeway", Config{SigningKeyPath: "k", Leeway: -time.Second}},
		{"huge leeway", Config{SigningKeyPath: "k", Leeway: time.Hour}},
		{"unsupported scheme", Config{JWKS: "ftp://host/jwks.json"}},
		{"URL without host", Config{JWKS: "https:///jwks.json"}},
		{"file URL with host", Config{JWKS: "file://host/jwks.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(t.Context(), tt.cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

func TestNewRejectsBadJWKSFile(t *testing.T) {
	m := testKeys()
	tests := map[string]string{
		"not JSON":        "{",
		"no keys member":  `{"k":[]}`,
		"empty keys":      `{"keys":[]}`,
		"only oct":        `{"keys":[{"kty":"oct","k":"` + b64(m.octKey) + `"}]}`,
		"only RSA-1024":   `{"keys":[` + string(mustJSON(t, rsaJWK("x", &m.rsa1k.PublicKey))) + `]}`,
		"only P-384":      `{"keys":[` + string(mustJSON(t, ecJWK("x", &m.ec384.PublicKey))) + `]}`,
		"alg mismatch":    `{"keys":[` + string(mustJSON(t, with(rsaJWK("x", &m.rsa.PublicKey), "alg", "PS256"))) + `]}`,
		"key_ops sign":    `{"keys":[` + string(mustJSON(t, with(ecJWK("x", &m.ec.PublicKey), "key_ops", []string{"sign"}))) + `]}`,
		"bad Ed25519 len": `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(t.Context(), Config{JWKS: writeFile(t, "jwks.json", []byte(doc))}); err == nil {
				t.Error("New accepted the JWKS")
			}
		})
	}
	if _, err := New(t.Context(), Config{JWKS: "/nonexistent/jwks.json"}); err == nil {
		t.Error("New accepted a missing JWKS file")
	}
}

func TestJWKSFileURL(t *testing.T) {
	m := testKeys()
	p := writeFile(t, "jwks.json", standardJWKS())
	v, err := New(t.Context(), Config{JWKS: "file://" + p, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, m.ec, map[string]any{"kid": kidEC}, validClaims())); err != nil {
		t.Error(err)
	}
}

// TestVerifyNoIssuerAudienceConfigured checks that iss and aud are ignored when not configured.
func TestVerifyNoIssuerAudienceConfigured(t *testing.T) {
	path, key, kid := localKey(t)
	v, err := New(t.Context(), Config{SigningKeyPath: path, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok := sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "iss", "anyone", "aud", nil))
	if _, err := v.Verify(tok); err != nil {
		t.Error(err)
	}
	// With only the local key, a kid-less EdDSA token is unambiguous.
	tok = sign(t, jwt.SigningMethodEdDSA, key, nil, validClaims())
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("kid-less token with one local key: %v", err)
	}
}

func TestErrorTextHidesToken(t *testing.T) {
	v, key, kid := newTestVerifier(t)
	tok := sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, with(validClaims(), "exp", testNow.Add(-time.Hour).Unix()))
	_, err := v.Verify(tok)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, part := range strings.Split(tok, ".") {
		if strings.Contains(err.Error(), part) {
			t.Errorf("error %q contains a token segment", err)
		}
	}
}

func mustMarshalPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
