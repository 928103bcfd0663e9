package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// MaxTokenBytes is the longest token Verify parses; longer ones are rejected before any decoding.
// Tokens with a few dozen scopes are well under 2 KiB; 8 KiB also matches common header limits.
const MaxTokenBytes = 8 << 10

// maxKidBytes bounds the kid header value; thumbprints are 43 characters.
const maxKidBytes = 256

// Config configures a [Verifier]. At least one of SigningKeyPath and JWKS must be set.
type Config struct {
	// SigningKeyPath is the local Ed25519 key file (EXPORTD_SIGNING_KEY), created if absent by
	// [LoadOrCreateSigningKey]. Tokens it signs (kid = its thumbprint) are always trusted.
	SigningKeyPath string
	// JWKS (EXPORTD_JWKS) is a file path, a file:/// URL or an http(s) URL of a JWK Set. A file is
	// read once, by New. A URL is fetched by New (New fails if that fetch fails) and then refreshed
	// in the background every RefreshInterval, and sooner (at most every MinRefreshInterval) when a
	// token names an unknown kid.
	JWKS string
	// Issuer (EXPORTD_JWT_ISSUER), when set, must equal the token's iss.
	Issuer string
	// Audience (EXPORTD_JWT_AUDIENCE), when set, must be among the token's aud.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means the default, 30s; at most 5m.
	Leeway time.Duration
	// HTTPClient fetches a JWKS URL. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock for token validation. Default time.Now.
	Now func() time.Time
	// RefreshInterval is the period of background JWKS refreshes. Default 1h.
	RefreshInterval time.Duration
	// MinRefreshInterval is the shortest time between two JWKS fetches, which bounds the fetches that
	// tokens with unknown kids can cause. Default 1m.
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one JWKS fetch. Default 10s.
	FetchTimeout time.Duration
	// Logger receives JWKS refresh failures (the only errors without a caller to return them to).
	// Default no-op.
	Logger *zap.Logger
}

const (
	defaultLeeway             = 30 * time.Second
	maxLeeway                 = 5 * time.Minute
	defaultRefreshInterval    = time.Hour
	defaultMinRefreshInterval = time.Minute
	defaultFetchTimeout       = 10 * time.Second
)

func (c *Config) setDefaults() {
	if c.Leeway == 0 {
		c.Leeway = defaultLeeway
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = defaultRefreshInterval
	}
	if c.MinRefreshInterval == 0 {
		c.MinRefreshInterval = defaultMinRefreshInterval
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = defaultFetchTimeout
	}
	if c.HTTPClient == nil {
		// Redirects are not followed: a JWKS endpoint that moved is an
		// error to fix in the configuration, not a hop to another host.
		c.HTTPClient = &http.Client{Timeout: c.FetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate reports the first invalid setting. New calls it after filling in defaults.
func (c *Config) Validate() error {
	if c.SigningKeyPath == "" && c.JWKS == "" {
		return errors.New("auth config: neither a signing key path nor a JWKS is set: no token could be verified")
	}
	if c.JWKS != "" {
		if _, err := parseJWKSSource(c.JWKS); err != nil {
			return fmt.Errorf("auth config: %w", err)
		}
	}
	if c.Leeway < 0 || c.Leeway > maxLeeway {
		return fmt.Errorf("auth config: leeway %s outside 0-%s", c.Leeway, maxLeeway)
	}
	if c.RefreshInterval < 0 || c.MinRefreshInterval < 0 || c.FetchTimeout < 0 {
		return errors.New("auth config: negative JWKS refresh interval or fetch timeout")
	}
	return nil
}

// Verifier checks bearer tokens. It is safe for concurrent use. A Verifier made with a JWKS URL owns
// a refresh goroutine: call Close (or cancel the context given to New, then Close) to stop it.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	src    jwksSource
	local  []trustedKey // the local signing key, part of every key set

	keys atomic.Pointer[keySet]

	refreshNow chan struct{} // unknown kid seen; buffered 1, never blocks Verify
	lastFetch  time.Time     // owned by New, then by run
	cancel     context.CancelFunc
	done       chan struct{} // closed when run has returned (at once when there is no run)
	closeOnce  sync.Once
}

// New builds a Verifier: it loads or creates the local signing key, reads or fetches the JWKS, and
// for a JWKS URL starts the background refresh, which stops when ctx is cancelled or Close is called.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(allowedAlgs),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v := &Verifier{
		cfg:        cfg,
		parser:     jwt.NewParser(opts...),
		refreshNow: make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	if cfg.SigningKeyPath != "" {
		key, kid, err := LoadOrCreateSigningKey(cfg.SigningKeyPath)
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		v.local = []trustedKey{{kid: kid, alg: algEdDSA, key: key.Public().(ed25519.PublicKey)}}
	}
	var remote []trustedKey
	if cfg.JWKS != "" {
		src, err := parseJWKSSource(cfg.JWKS)
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		v.src = src
		var raw []byte
		if src.url != nil {
			fctx, cancel := context.WithTimeout(ctx, cfg.FetchTimeout)
			raw, err = fetchJWKS(fctx, cfg.HTTPClient, src)
			cancel()
			v.lastFetch = time.Now()
		} else {
			raw, err = readJWKSFile(src.path)
		}
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		if remote, err = parseJWKS(raw); err != nil {
			return nil, fmt.Errorf("new verifier: JWKS %s: %w", src, err)
		}
	}
	v.storeKeys(remote)
	if v.src.url == nil {
		close(v.done)
		return v, nil
	}
	rctx, cancel := context.WithCancel(ctx)
	v.cancel = cancel
	go v.run(rctx)
	return v, nil
}

// Close stops the JWKS refresh goroutine, if any, and waits for it to return. It is idempotent and
// always returns nil. Verify keeps working after Close with the last keys.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		if v.cancel != nil {
			v.cancel()
		}
	})
	<-v.done
	return nil
}

// storeKeys publishes the local key plus remote as the current key set.
func (v *Verifier) storeKeys(remote []trustedKey) {
	keys := make([]trustedKey, 0, len(v.local)+len(remote))
	keys = append(keys, v.local...)
	keys = append(keys, remote...)
	v.keys.Store(&keySet{keys: keys})
}

// run refreshes the JWKS every RefreshInterval and on request, never twice within
// MinRefreshInterval. A failed refresh keeps the previous keys.
func (v *Verifier) run(ctx context.Context) {
	defer close(v.done)
	ticker := time.NewTicker(v.cfg.RefreshInterval)
	defer ticker.Stop()
	var retry *time.Timer // pending refresh requested too soon after the last fetch
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-v.refreshNow:
			if retryC != nil {
				continue // already scheduled
			}
			if wait := v.cfg.MinRefreshInterval - time.Since(v.lastFetch); wait > 0 {
				retry = time.NewTimer(wait)
				retryC = retry.C
				continue
			}
		case <-retryC:
		}
		if retry != nil {
			retry.Stop()
			retry, retryC = nil, nil
		}
		v.refresh(ctx)
	}
}

// refresh fetches and installs the JWKS once; failures are logged and the old keys kept.
func (v *Verifier) refresh(ctx context.Context) {
	fctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()
	raw, err := fetchJWKS(fctx, v.cfg.HTTPClient, v.src)
	v.lastFetch = time.Now()
	var keys []trustedKey
	if err == nil {
		keys, err = parseJWKS(raw)
	}
	if err != nil {
		if ctx.Err() == nil {
			v.cfg.Logger.Warn("JWKS refresh failed; keeping the previous keys",
				zap.String("jwks", v.src.String()), zap.Error(err))
		}
		return
	}
	v.storeKeys(keys)
}

// requestRefresh asks run for an early refresh without blocking; a no-op without a JWKS URL.
func (v *Verifier) requestRefresh() {
	if v.src.url == nil {
		return
	}
	select {
	case v.refreshNow <- struct{}{}:
	default:
	}
}

// Verify checks a bearer token (the text after "Bearer ") and returns its principal. Every failure
// wraps [ErrUnauthorized]; use [Reason] for a log or metric label, and never show the error text to
// the client.
//
// A token is accepted when all of these hold: at most [MaxTokenBytes], three base64url segments;
// alg EdDSA, RS256 or ES256 and no crit header; a trusted key selected by kid whose type is the
// alg's family (Ed25519, RSA ≥ 2048 bits, P-256) — a token without kid is verified only if exactly
// one trusted key has its alg's family, and a kid that names keys of another family only is an
// algorithm mismatch; a valid signature; exp present and not past, nbf not future, iat not future
// (each with Leeway); iss and aud as configured; sub `users/<uuid>` or `service-accounts/<uuid>`;
// capabilities (optional) 1-128 visible ASCII characters each; scopes (optional) with a target
// `enterprises/<uuid>`, `clients/<uuid>` or `client-accounts/<uuid>` and an extent perimeter or
// subtree (perimeter when omitted). UUIDs are canonical lowercase. Unknown claims are ignored.
//
// Verify does no network I/O: an unknown kid only schedules an early JWKS refresh, so a token signed
// with a key the issuer has just published is accepted once that refresh lands.
func (v *Verifier) Verify(token string) (*Principal, error) {
	if token == "" {
		return nil, reject(ReasonMissing, "empty token")
	}
	if len(token) > MaxTokenBytes {
		return nil, reject(ReasonOversized, "token of %d bytes, limit %d", len(token), MaxTokenBytes)
	}
	if !wellFormed(token) {
		return nil, reject(ReasonMalformed, "not three non-empty base64url segments")
	}
	var claims tokenClaims
	t, err := v.parser.ParseWithClaims(token, &claims, v.keyFor)
	if err != nil {
		return nil, classify(t, &claims, err)
	}
	return claims.principal()
}

// wellFormed reports whether token is three non-empty segments of base64url characters.
func wellFormed(token string) bool {
	dots, segLen := 0, 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			if segLen == 0 {
				return false
			}
			dots++
			segLen = 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			segLen++
		default:
			return false
		}
	}
	return dots == 2 && segLen > 0
}

// keyFor is the jwt.Keyfunc: it selects the one trusted key for the token's kid and alg.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, reject(ReasonClaims, "crit header not supported")
	}
	alg := t.Method.Alg()
	if !isAllowedAlg(alg) { // the parser checked already; stay safe
		return nil, reject(ReasonAlgorithm, "alg %.16q not allowed", alg)
	}
	kid := ""
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok || s == "" || len(s) > maxKidBytes {
			return nil, reject(ReasonMalformed, "kid is not a string of 1-%d bytes", maxKidBytes)
		}
		kid = s
	}
	var match *trustedKey
	n, otherFamily := 0, false
	ks := v.keys.Load()
	for i := range ks.keys {
		k := &ks.keys[i]
		if kid != "" && k.kid != kid {
			continue
		}
		if k.alg != alg {
			otherFamily = otherFamily || kid != ""
			continue
		}
		match = k
		n++
	}
	switch {
	case n == 1:
		return match.key, nil
	case n > 1 && kid == "":
		return nil, reject(ReasonUnknownKey, "no kid and %d trusted %s keys", n, alg)
	case n > 1:
		return nil, reject(ReasonUnknownKey, "kid %.64q names %d %s keys", kid, n, alg)
	case otherFamily:
		return nil, reject(ReasonAlgorithm, "alg %s does not fit the key with kid %.64q", alg, kid)
	}
	v.requestRefresh()
	if kid == "" {
		return nil, reject(ReasonUnknownKey, "no kid and no trusted %s key", alg)
	}
	return nil, reject(ReasonUnknownKey, "no trusted %s key with kid %.64q", alg, kid)
}

// classify maps a parser error to a rejection. c tells which required claim is missing, as the
// parser reports a missing exp, iss or aud with the same sentinel.
func classify(t *jwt.Token, c *tokenClaims, err error) error {
	var ue *unauthorizedError
	if errors.As(err, &ue) {
		return ue // from keyFor
	}
	if t != nil && (t.Method == nil || !isAllowedAlg(t.Method.Alg())) &&
		(errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable)) {
		return rejectErr(ReasonAlgorithm, err)
	}
	missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return rejectErr(ReasonMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return rejectErr(ReasonSignature, err)
	case errors.Is(err, jwt.ErrTokenExpired), missing && c.ExpiresAt == nil:
		return rejectErr(ReasonExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return rejectErr(ReasonNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), missing && c.Issuer == "":
		return rejectErr(ReasonIssuer, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience), missing:
		return rejectErr(ReasonAudience, err)
	}
	return rejectErr(ReasonClaims, err)
}

func isAllowedAlg(alg string) bool {
	return alg == algEdDSA || alg == algRS256 || alg == algES256
}

// principal validates the application claims of a verified token.
func (c *tokenClaims) principal() (*Principal, error) {
	if !ValidSubject(c.Subject) {
		return nil, reject(ReasonSubject, "sub is not users/<uuid> or service-accounts/<uuid>")
	}
	for _, capability := range c.Capabilities {
		if !validCapability(capability) {
			return nil, reject(ReasonClaims, "malformed capability")
		}
	}
	for i := range c.Scopes {
		s := &c.Scopes[i]
		if s.Extent == "" {
			s.Extent = ExtentPerimeter
		}
		if err := s.validate(); err != nil {
			return nil, rejectErr(ReasonClaims, err)
		}
	}
	return &Principal{Subject: c.Subject, Capabilities: c.Capabilities, Scopes: c.Scopes}, nil
}
