package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are what [Mint] puts in a token.
type Claims struct {
	// Sub is `users/<uuid>` or `service-accounts/<uuid>`.
	Sub string
	// Capabilities, e.g. [CapCreate], [CapRead].
	Capabilities []string
	// Scopes; an empty Extent is written as perimeter.
	Scopes []Scope
	// Issuer (`iss`) and Audience (`aud`) are written when not empty.
	Issuer   string
	Audience string
}

// tokenClaims is the wire form of a token's claims, shared by Mint and Verify.
type tokenClaims struct {
	jwt.RegisteredClaims
	Capabilities []string `json:"capabilities,omitempty"`
	Scopes       []Scope  `json:"scopes,omitempty"`
}

// maxCapabilityBytes bounds one capability string; real ones are like "operations_reports.create".
const maxCapabilityBytes = 128

// validCapability reports whether c is 1-128 visible ASCII characters.
func validCapability(c string) bool {
	if c == "" || len(c) > maxCapabilityBytes {
		return false
	}
	for i := 0; i < len(c); i++ {
		if c[i] <= ' ' || c[i] > '~' {
			return false
		}
	}
	return true
}

// Mint signs a token for c with the local Ed25519 key (alg EdDSA, header kid set), issued at now and
// expiring at now+ttl (whole seconds). ttl may be negative to mint an already expired token; note that
// the verifier accepts a token up to its leeway (default 30s) past exp. It is for `exportd token` and
// for tests: it checks the claims with the same rules as [Verifier.Verify] and fails rather than mint a
// token the verifier would reject for its claims.
func Mint(key ed25519.PrivateKey, kid string, c Claims, ttl time.Duration, now time.Time) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("mint token: Ed25519 private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if kid == "" {
		return "", errors.New("mint token: empty kid")
	}
	if ttl == 0 {
		return "", errors.New("mint token: zero ttl")
	}
	if !ValidSubject(c.Sub) {
		return "", fmt.Errorf("mint token: subject %q is not users/<uuid> or service-accounts/<uuid> (lowercase UUID)", c.Sub)
	}
	for _, capability := range c.Capabilities {
		if !validCapability(capability) {
			return "", fmt.Errorf("mint token: capability %q is not 1-%d visible ASCII characters", capability, maxCapabilityBytes)
		}
	}
	scopes := make([]Scope, len(c.Scopes))
	for i, s := range c.Scopes {
		if s.Extent == "" {
			s.Extent = ExtentPerimeter
		}
		if err := s.validate(); err != nil {
			return "", fmt.Errorf("mint token: %w", err)
		}
		scopes[i] = s
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Sub,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Capabilities: c.Capabilities,
		Scopes:       scopes,
	}
	if c.Audience != "" {
		claims.Audience = jwt.ClaimStrings{c.Audience}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("mint token: sign: %w", err)
	}
	return s, nil
}
