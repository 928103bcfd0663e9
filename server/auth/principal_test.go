package auth

import "testing"

func TestCovers(t *testing.T) {
	// Parent chains as the caller resolves them from data.
	ent := func(ref string) Target { return Target{Kind: KindEnterprise, Ref: ref} }
	cli := func(ref, e string) Target { return Target{Kind: KindClient, Ref: ref, EnterpriseRef: e} }
	acc := func(ref, c, e string) Target {
		return Target{Kind: KindClientAccount, Ref: ref, ClientRef: c, EnterpriseRef: e}
	}
	var (
		tEntA  = ent(entA)
		tEntB  = ent(entB)
		tCliA1 = cli(cliA1, entA)
		tCliB1 = cli(cliB1, entB)
		tAccA1 = acc(accA1x, cliA1, entA)
		tAccB1 = acc(accB1x, cliB1, entB)
	)
	tests := []struct {
		name   string
		scopes []Scope
		target Target
		want   bool
	}{
		// Enterprise perimeter: only the enterprise itself.
		{"ent perimeter covers itself", []Scope{{entA, ExtentPerimeter}}, tEntA, true},
		{"ent perimeter not its client", []Scope{{entA, ExtentPerimeter}}, tCliA1, false},
		{"ent perimeter not its account", []Scope{{entA, ExtentPerimeter}}, tAccA1, false},
		{"ent perimeter not another ent", []Scope{{entA, ExtentPerimeter}}, tEntB, false},
		// Enterprise subtree: itself, its clients, their accounts.
		{"ent subtree covers itself", []Scope{{entA, ExtentSubtree}}, tEntA, true},
		{"ent subtree covers its client", []Scope{{entA, ExtentSubtree}}, tCliA1, true},
		{"ent subtree covers its account", []Scope{{entA, ExtentSubtree}}, tAccA1, true},
		{"ent subtree not another ent", []Scope{{entA, ExtentSubtree}}, tEntB, false},
		{"ent subtree not another ent's client", []Scope{{entA, ExtentSubtree}}, tCliB1, false},
		{"ent subtree not another ent's account", []Scope{{entA, ExtentSubtree}}, tAccB1, false},
		// The security property: the client's enterprise is the resolved one, not the hoped-for one.
		{"ent A subtree, client A1 resolved under B", []Scope{{entA, ExtentSubtree}}, cli(cliA1, entB), false},
		{"ent A subtree, account resolved under B", []Scope{{entA, ExtentSubtree}}, acc(accA1x, cliA1, entB), false},
		// Client scopes.
		{"client perimeter covers itself", []Scope{{cliA1, ExtentPerimeter}}, tCliA1, true},
		{"client perimeter not its account", []Scope{{cliA1, ExtentPerimeter}}, tAccA1, false},
		{"client perimeter not its enterprise", []Scope{{cliA1, ExtentPerimeter}}, tEntA, false},
		{"client subtree covers its account", []Scope{{cliA1, ExtentSubtree}}, tAccA1, true},
		{"client subtree not its enterprise", []Scope{{cliA1, ExtentSubtree}}, tEntA, false},
		{"client subtree not another client's account", []Scope{{cliA1, ExtentSubtree}}, tAccB1, false},
		{"client subtree, account resolved under another client", []Scope{{cliA1, ExtentSubtree}}, acc(accA1x, cliB1, entB), false},
		// Account scopes.
		{"account perimeter covers itself", []Scope{{accA1x, ExtentPerimeter}}, tAccA1, true},
		{"account subtree covers itself", []Scope{{accA1x, ExtentSubtree}}, tAccA1, true},
		{"account scope not its client", []Scope{{accA1x, ExtentSubtree}}, tCliA1, false},
		{"account scope not another account", []Scope{{accA1x, ExtentSubtree}}, tAccB1, false},
		// Several scopes: any one covers.
		{"second scope covers", []Scope{{entB, ExtentPerimeter}, {cliA1, ExtentPerimeter}}, tCliA1, true},
		{"no scopes", nil, tEntA, false},
		// Incoherent targets fail closed.
		{"kind and ref disagree", []Scope{{entA, ExtentSubtree}}, Target{Kind: KindClient, Ref: entA, EnterpriseRef: entA}, false},
		{"unknown kind", []Scope{{entA, ExtentSubtree}}, Target{Kind: "tenant", Ref: entA}, false},
		{"client without enterprise", []Scope{{cliA1, ExtentPerimeter}}, Target{Kind: KindClient, Ref: cliA1}, false},
		{"account without client", []Scope{{accA1x, ExtentPerimeter}}, Target{Kind: KindClientAccount, Ref: accA1x, EnterpriseRef: entA}, false},
		{"enterprise naming another enterprise", []Scope{{entA, ExtentSubtree}}, Target{Kind: KindEnterprise, Ref: entA, EnterpriseRef: entB}, false},
		{"enterprise with client ref", []Scope{{entA, ExtentSubtree}}, Target{Kind: KindEnterprise, Ref: entA, ClientRef: cliA1}, false},
		{"malformed ref", []Scope{{"enterprises/x", ExtentSubtree}}, Target{Kind: KindEnterprise, Ref: "enterprises/x"}, false},
		{"empty target", []Scope{{"", ExtentSubtree}}, Target{}, false},
		{"uppercase ref", []Scope{{entA, ExtentSubtree}}, ent("enterprises/AAAAAAAA-0000-4000-8000-000000000001"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Principal{Subject: userSub, Scopes: tt.scopes}
			if got := p.Covers(tt.target); got != tt.want {
				t.Errorf("Covers = %v, want %v", got, tt.want)
			}
			e, ok := p.CoveringEnterprise(tt.target)
			if ok != tt.want {
				t.Errorf("CoveringEnterprise ok = %v, want %v", ok, tt.want)
			}
			switch {
			case ok && tt.target.Kind == KindEnterprise && e != tt.target.Ref:
				t.Errorf("covering enterprise %q, want %q", e, tt.target.Ref)
			case ok && tt.target.Kind != KindEnterprise && e != tt.target.EnterpriseRef:
				t.Errorf("covering enterprise %q, want %q", e, tt.target.EnterpriseRef)
			case !ok && e != "":
				t.Errorf("covering enterprise %q without coverage", e)
			}
		})
	}
}

func TestNilPrincipal(t *testing.T) {
	var p *Principal
	if p.Can(CapRead) || p.Covers(Target{Kind: KindEnterprise, Ref: entA}) {
		t.Error("nil principal has rights")
	}
}

func TestCan(t *testing.T) {
	p := &Principal{Capabilities: []string{CapRead, "other.thing"}}
	for capability, want := range map[string]bool{
		CapRead: true, CapCreate: false, "": false, "operations_reports.READ": false, "operations_reports": false,
	} {
		if got := p.Can(capability); got != want {
			t.Errorf("Can(%q) = %v, want %v", capability, got, want)
		}
	}
}
