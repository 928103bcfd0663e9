package server

import (
	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/server/auth"
)

// covers decides whether p covers a requested scope (kind, ref) whose
// parents were resolved from data (enterprise, and client for an account).
// It is the one coverage rule for creating and for seeing exports (SPEC §2,
// §6), built on auth.Principal.Covers, plus two cases auth's Target cannot
// express, both failing closed:
//
//   - no parent known (a client or account without any activity): only a
//     scope naming the ref itself covers it; a subtree scope cannot prove
//     the resource is under it;
//   - an account whose activity carries no client: the ref itself or a
//     subtree scope on its (data-resolved) enterprise.
func covers(p *auth.Principal, kind, ref, enterprise, client string) bool {
	if p == nil {
		return false
	}
	switch {
	case kind != auth.KindEnterprise && enterprise == "":
		return namesExactly(p, ref)
	case kind == auth.KindClientAccount && client == "":
		if namesExactly(p, ref) {
			return true
		}
		for _, s := range p.Scopes {
			if s.Extent == auth.ExtentSubtree && s.Target == enterprise {
				return true
			}
		}
		return false
	}
	if kind == auth.KindEnterprise {
		enterprise = ref
	}
	return p.Covers(auth.Target{Kind: kind, Ref: ref, EnterpriseRef: enterprise, ClientRef: client})
}

func namesExactly(p *auth.Principal, ref string) bool {
	for _, s := range p.Scopes {
		if s.Target == ref {
			return true
		}
	}
	return false
}

// sees reports whether p may see export x: its requested scope is covered
// by p's scopes, decided on the parents recorded at creation (SPEC §6: a
// perimeter scope on enterprises/A sees exports of enterprises/A only).
func sees(p *auth.Principal, x *engine.Export) bool {
	client := ""
	if x.ScopeKind == engine.KindClientAccount {
		client = x.ClientRef
	}
	return covers(p, x.ScopeKind, x.ScopeRef, x.EnterpriseRef, client)
}

// visibility translates p's scopes into the record filter of List; it
// selects the same exports as sees (which List results are checked
// against again):
//
//	perimeter T          → scope_ref = T
//	subtree enterprise E → enterprise_ref = E (its own, its clients' and accounts' exports)
//	subtree client C     → scope_ref = C, or client_ref = C (its accounts' exports)
//	subtree account A    → scope_ref = A
func visibility(p *auth.Principal) engine.Visibility {
	var v engine.Visibility
	for _, s := range p.Scopes {
		kind, ok := auth.KindOf(s.Target)
		if !ok {
			continue
		}
		if s.Extent != auth.ExtentSubtree {
			v.Refs = append(v.Refs, s.Target)
			continue
		}
		switch kind {
		case auth.KindEnterprise:
			v.Enterprises = append(v.Enterprises, s.Target)
		case auth.KindClient:
			v.Refs = append(v.Refs, s.Target)
			v.Clients = append(v.Clients, s.Target)
		default:
			v.Refs = append(v.Refs, s.Target)
		}
	}
	return v
}
