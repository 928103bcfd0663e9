package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 13 point 2: with an identity provider (EXPORTD_JWKS) the local
// signing key is not trusted unless EXPORTD_TRUST_LOCAL_KEY=true, and a
// JWKS without EXPORTD_JWT_AUDIENCE stops serve at start unless
// EXPORTD_ALLOW_ANY_AUDIENCE=true.
func TestE2ELocalKeyTrust(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	body := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"idp-1","x":%q}]}`,
		base64.RawURLEncoding.EncodeToString(pub))
	if err := os.WriteFile(jwks, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	const aud = "exportd-test"
	ent := "enterprises/00000000-0000-4000-8000-00000000e13a"
	list := "/operations-activity-exports"

	// A JWKS without an audience: serve refuses to start, naming the setting.
	r := exportd(t, []string{"EXPORTD_JWKS=" + jwks, "EXPORTD_HTTP_ADDR=127.0.0.1:1", "EXPORTD_ADMIN_ADDR=127.0.0.1:1"}, "", "serve")
	if r.code == 0 || !strings.Contains(r.stderr, "EXPORTD_JWT_AUDIENCE") {
		t.Fatalf("serve with a JWKS and no audience: exit %d, %s", r.code, r.stderr)
	}

	// JWKS set: the local key's tokens are refused by default ...
	s := startServe(t, "EXPORTD_JWKS="+jwks, "EXPORTD_JWT_AUDIENCE="+aud)
	tok := strings.TrimSpace(mustExportd(t, []string{"EXPORTD_SIGNING_KEY=" + s.key, "EXPORTD_JWT_AUDIENCE=" + aud}, "token",
		"--sub", "users/00000000-0000-4000-8000-0000000000aa", "--scope", ent+":subtree", "--capability", "operations_reports.read").stdout)
	if code, _, b := s.do(t, "GET", list, tok, ""); code != 401 {
		t.Fatalf("local-key token with a JWKS and no opt-in: %d %s", code, b)
	}
	// ... and accepted with EXPORTD_TRUST_LOCAL_KEY=true.
	s2 := startServe(t, "EXPORTD_JWKS="+jwks, "EXPORTD_JWT_AUDIENCE="+aud, "EXPORTD_TRUST_LOCAL_KEY=true")
	tok2 := strings.TrimSpace(mustExportd(t, []string{"EXPORTD_SIGNING_KEY=" + s2.key, "EXPORTD_JWT_AUDIENCE=" + aud}, "token",
		"--sub", "users/00000000-0000-4000-8000-0000000000aa", "--scope", ent+":subtree", "--capability", "operations_reports.read").stdout)
	if code, _, b := s2.do(t, "GET", list, tok2, ""); code != 200 {
		t.Fatalf("local-key token with EXPORTD_TRUST_LOCAL_KEY=true: %d %s", code, b)
	}
	// Without a JWKS the local key is trusted, as before.
	s3 := startServe(t)
	if code, _, b := s3.do(t, "GET", list, s3.token(t, ent+":subtree", "operations_reports.read"), ""); code != 200 {
		t.Fatalf("local-key token without a JWKS: %d %s", code, b)
	}
}
