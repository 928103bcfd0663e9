package auth

import (
	"fmt"
	"strings"
)

// Kinds of a requested scope (SPEC §1 `requested_scope.kind`) and of a coverage [Target].
const (
	KindEnterprise    = "enterprise"
	KindClient        = "client"
	KindClientAccount = "client_account"
)

// Ref prefixes of the resources a scope can name, and of token subjects.
const (
	PrefixEnterprise     = "enterprises/"
	PrefixClient         = "clients/"
	PrefixClientAccount  = "client-accounts/"
	PrefixUser           = "users/"
	PrefixServiceAccount = "service-accounts/"
)

// isCanonicalUUID reports whether s is a UUID in canonical lowercase text form
// (8-4-4-4-12 lowercase hex digits). Version and variant bits are not checked: refs are opaque ids.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// hasUUID reports whether ref is prefix followed by a canonical lowercase UUID.
func hasUUID(ref, prefix string) bool {
	rest, ok := strings.CutPrefix(ref, prefix)
	return ok && isCanonicalUUID(rest)
}

// KindOf returns the kind named by a scope ref's prefix (`enterprises/<uuid>` → [KindEnterprise],
// `clients/<uuid>` → [KindClient], `client-accounts/<uuid>` → [KindClientAccount]). ok is false
// unless the ref is exactly such a prefix followed by a canonical lowercase UUID.
func KindOf(ref string) (kind string, ok bool) {
	switch {
	case hasUUID(ref, PrefixEnterprise):
		return KindEnterprise, true
	case hasUUID(ref, PrefixClient):
		return KindClient, true
	case hasUUID(ref, PrefixClientAccount):
		return KindClientAccount, true
	}
	return "", false
}

// ValidSubject reports whether sub is `users/<uuid>` or `service-accounts/<uuid>` with a canonical
// lowercase UUID, the only subjects a token may carry (SPEC §2).
func ValidSubject(sub string) bool {
	return hasUUID(sub, PrefixUser) || hasUUID(sub, PrefixServiceAccount)
}

// ParseScope parses the `exportd token --scope` form `REF[:subtree]` (`REF:perimeter` is accepted
// too, and a bare REF is a perimeter scope).
func ParseScope(s string) (Scope, error) {
	ref, extent, found := strings.Cut(s, ":")
	if !found {
		extent = ExtentPerimeter
	}
	sc := Scope{Target: ref, Extent: extent}
	if err := sc.validate(); err != nil {
		return Scope{}, fmt.Errorf("parse scope %q: %w", s, err)
	}
	return sc, nil
}
