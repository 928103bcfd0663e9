package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/exportd/exportd/server/auth"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", stderr)
	sub := fs.String("sub", "", "subject: users/<uuid> or service-accounts/<uuid>")
	var caps, scopes multiFlag
	fs.Var(&caps, "capability", "capability (repeatable), e.g. operations_reports.create")
	fs.Var(&scopes, "scope", "scope REF[:subtree] (repeatable)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime; negative mints an already expired token")
	s, err := parseSettings(fs, args, "signing-key", "jwt-issuer", "jwt-audience")
	if err != nil {
		return err
	}
	if !auth.ValidSubject(*sub) {
		return &exitError{2, fmt.Errorf("--sub %q: want users/<uuid> or service-accounts/<uuid>", *sub)}
	}
	if len(caps) == 0 || len(scopes) == 0 {
		return &exitError{2, errors.New("at least one --capability and one --scope are required")}
	}
	c := auth.Claims{Sub: *sub, Capabilities: caps, Issuer: s.JWTIssuer, Audience: s.JWTAudience}
	for _, v := range scopes {
		sc, err := auth.ParseScope(v)
		if err != nil {
			return &exitError{2, fmt.Errorf("--scope %q: %v", v, err)}
		}
		c.Scopes = append(c.Scopes, sc)
	}
	key, kid, err := auth.LoadOrCreateSigningKey(s.SigningKey)
	if err != nil {
		return err
	}
	tok, err := auth.Mint(key, kid, c, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
