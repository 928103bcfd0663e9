package auth

import (
	"errors"
	"fmt"
	"slices"
)

// Capabilities the export API checks (SPEC §1, endpoint table).
const (
	CapCreate = "operations_reports.create" // create and cancel exports
	CapRead   = "operations_reports.read"   // get, list and download exports
)

// Extents of a [Scope].
const (
	// ExtentPerimeter covers the scope's target itself and nothing under it. It is the extent of a
	// scope whose token omits "extent": the narrower reading is the safe one.
	ExtentPerimeter = "perimeter"
	// ExtentSubtree covers the target and everything under it: an enterprise's clients and their
	// accounts, a client's accounts.
	ExtentSubtree = "subtree"
)

// Scope is one element of a token's `scopes` claim.
type Scope struct {
	// Target is `enterprises/<uuid>`, `clients/<uuid>` or `client-accounts/<uuid>`.
	Target string `json:"target"`
	// Extent is [ExtentPerimeter] or [ExtentSubtree].
	Extent string `json:"extent,omitempty"`
}

func (s Scope) validate() error {
	if _, ok := KindOf(s.Target); !ok {
		return fmt.Errorf("scope target %.80q is not enterprises/, clients/ or client-accounts/ followed by a lowercase UUID", s.Target)
	}
	if s.Extent != ExtentPerimeter && s.Extent != ExtentSubtree {
		return fmt.Errorf("scope extent %.20q is neither %q nor %q", s.Extent, ExtentPerimeter, ExtentSubtree)
	}
	return nil
}

// Principal is the verified caller behind a bearer token. A Principal returned by [Verifier.Verify]
// has a valid Subject, well-formed Capabilities and validated Scopes with an explicit Extent; it is
// not modified afterwards and is safe for concurrent reads.
type Principal struct {
	// Subject is `users/<uuid>` or `service-accounts/<uuid>`; it is the export's generated_by.
	Subject string
	// Capabilities are the token's capabilities, as given (unknown ones are kept and never match).
	Capabilities []string
	// Scopes are the token's scopes, extent defaulted to perimeter.
	Scopes []Scope
}

// Can reports whether the principal holds capability (exact match).
func (p *Principal) Can(capability string) bool {
	return p != nil && capability != "" && slices.Contains(p.Capabilities, capability)
}

// Target is a resource whose coverage is asked: the requested_scope of a create request or of a
// stored export, with its parent chain resolved by the caller from data (never from the token).
type Target struct {
	// Kind is [KindEnterprise], [KindClient] or [KindClientAccount].
	Kind string
	// Ref is the resource's ref: `enterprises/<uuid>`, `clients/<uuid>` or `client-accounts/<uuid>`.
	Ref string
	// EnterpriseRef is the enterprise that owns the resource; for an enterprise it is Ref (or empty,
	// meaning Ref). Required for clients and accounts.
	EnterpriseRef string
	// ClientRef is the client that owns an account. Required for accounts, empty otherwise.
	ClientRef string
}

// errTarget is returned by Target.check for an incoherent target; coverage then fails closed.
var errTarget = errors.New("incoherent target")

// check validates the target's shape and returns it with EnterpriseRef filled in for enterprises.
func (t Target) check() (Target, error) {
	kind, ok := KindOf(t.Ref)
	if !ok || kind != t.Kind {
		return t, errTarget
	}
	switch t.Kind {
	case KindEnterprise:
		if t.EnterpriseRef == "" {
			t.EnterpriseRef = t.Ref
		}
		if t.EnterpriseRef != t.Ref || t.ClientRef != "" {
			return t, errTarget
		}
	case KindClient:
		if !hasUUID(t.EnterpriseRef, PrefixEnterprise) || t.ClientRef != "" {
			return t, errTarget
		}
	case KindClientAccount:
		if !hasUUID(t.EnterpriseRef, PrefixEnterprise) || !hasUUID(t.ClientRef, PrefixClient) {
			return t, errTarget
		}
	}
	return t, nil
}

// Covers reports whether one of the principal's scopes covers t (SPEC §2, §6): a scope covers its
// own target whatever its extent; a subtree scope on an enterprise also covers that enterprise's
// clients and accounts, and a subtree scope on a client also covers that client's accounts. A
// perimeter scope on `enterprises/A` therefore covers requests and exports whose requested scope is
// `enterprises/A` itself, and nothing else.
//
// Coverage of a client or account is decided on t.EnterpriseRef and t.ClientRef, which the caller
// must have resolved from data: a subtree scope on enterprise A does not cover a client whose
// resolved enterprise is B. An incoherent target (kind and ref prefix disagree, a missing or
// malformed parent, an enterprise whose EnterpriseRef is another enterprise) is never covered.
func (p *Principal) Covers(t Target) bool {
	_, ok := p.CoveringEnterprise(t)
	return ok
}

// CoveringEnterprise returns the enterprise to which an export of t must be restricted, with ok
// true, when the principal covers t (see [Principal.Covers]); it is t's resolved EnterpriseRef (t.Ref
// for an enterprise). Otherwise it returns "", false.
func (p *Principal) CoveringEnterprise(t Target) (enterpriseRef string, ok bool) {
	if p == nil {
		return "", false
	}
	t, err := t.check()
	if err != nil {
		return "", false
	}
	for _, s := range p.Scopes {
		if s.covers(t) {
			return t.EnterpriseRef, true
		}
	}
	return "", false
}

// covers reports whether s covers the checked target t.
func (s Scope) covers(t Target) bool {
	if s.Target == "" {
		return false
	}
	if s.Target == t.Ref {
		return true
	}
	if s.Extent != ExtentSubtree {
		return false
	}
	switch t.Kind {
	case KindClient:
		return s.Target == t.EnterpriseRef
	case KindClientAccount:
		return s.Target == t.EnterpriseRef || s.Target == t.ClientRef
	}
	return false
}
