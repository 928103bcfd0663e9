// Package auth turns bearer tokens into principals and decides what a principal may see.
//
// A token is a compact JWS (JWT) whose claims are those of SPEC §2: sub, capabilities, scopes, exp
// (required), nbf and iat (honoured), iss and aud (checked when configured). The [Verifier] trusts the
// local Ed25519 signing key (the one `exportd token` mints with, see [LoadOrCreateSigningKey] and
// [Mint]) and the keys of a JWKS read from a file or fetched from a URL. Every rejection is
// [ErrUnauthorized]; the reason is for logs and metrics only ([Reason]) and never reaches the caller.
//
// Coverage ([Principal.Covers], [Principal.CoveringEnterprise]) is pure: the caller resolves the parent
// chain of the requested client or account from data and passes it in a [Target]; the principal only
// compares refs, so an export query can always be restricted to the enterprise the data names, never to
// one the token names.
//
// # Libraries
//
// Signatures and registered claims are handled by github.com/golang-jwt/jwt/v5: the most widely used
// Go JWT library, small surface (JWS only, no JWE, no keys taken from token headers), an explicit
// allow-list of algorithms (WithValidMethods), a required exp (WithExpirationRequired) and strict
// base64url decoding. JWK parsing and per-key validation (RFC 7517/7518 RSA, EC and OKP keys, x5c
// consistency) are done by github.com/MicahParks/jwkset, the key-set half of
// github.com/MicahParks/keyfunc/v3. keyfunc itself was evaluated and is not used, because in this
// server its glue would weaken the contract: its refresh goroutine cannot be waited for on shutdown
// (house style: every goroutine has an owner that waits for it), an unknown kid makes the request wait
// on the rate limiter and the remote fetch, a kid-less token is tried against every key of every
// family, and the JWKS response body is read without a size limit. The fetch loop, the key lookup and
// the algorithm-family rule therefore live here (jwks.go, verifier.go), on top of jwkset's parser.
package auth
