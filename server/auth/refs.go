package auth

import (
	"fmt"
	"strings"

	"github.com/exportd/exportd/engine/activity"
)

// Kinds of a requested scope (SPEC §1 `requested_scope.kind`) and of a coverage [Target]:
// activity's, the one definition.
const (
	KindEnterprise    = activity.KindEnterprise
	KindClient        = activity.KindClient
	KindClientAccount = activity.KindClientAccount
)

// Ref prefixes of the resources a scope can name, and of token subjects (activity's).
const (
	PrefixEnterprise     = activity.PrefixEnterprise
	PrefixClient         = activity.PrefixClient
	PrefixClientAccount  = activity.PrefixClientAccount
	PrefixUser           = activity.PrefixUser
	PrefixServiceAccount = activity.PrefixServiceAccount
)

// hasUUID reports whether ref is prefix followed by a canonical lowercase UUID.
func hasUUID(ref, prefix string) bool {
	return activity.ValidRef(ref, prefix)
}

// KindOf returns the kind named by a scope ref's prefix (`enterprises/<uuid>` → [KindEnterprise],
// `clients/<uuid>` → [KindClient], `client-accounts/<uuid>` → [KindClientAccount]). ok is false
// unless the ref is exactly such a prefix followed by a canonical lowercase UUID.
func KindOf(ref string) (kind string, ok bool) {
	kind, ok = activity.ScopeKindOf(ref)
	if !ok {
		return "", false
	}
	return kind, true
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
