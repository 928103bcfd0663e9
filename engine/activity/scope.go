package activity

import "strings"

// Kinds of a scope (SPEC §1 `requested_scope.kind`): the one definition the
// engine, the API and the token checks share, with the ref prefixes above.
const (
	KindEnterprise    = "enterprise"
	KindClient        = "client"
	KindClientAccount = "client_account"
)

// ScopeKindOf returns the kind named by a scope ref's prefix
// (`enterprises/<uuid>`, `clients/<uuid>`, `client-accounts/<uuid>`); ok is
// false unless the ref is exactly such a prefix followed by a canonical
// lowercase UUID.
func ScopeKindOf(ref string) (kind string, ok bool) {
	for _, k := range [...]struct{ prefix, kind string }{
		{PrefixEnterprise, KindEnterprise}, {PrefixClient, KindClient}, {PrefixClientAccount, KindClientAccount},
	} {
		if rest, found := strings.CutPrefix(ref, k.prefix); found {
			return k.kind, ValidUUID(rest)
		}
	}
	return "", false
}
