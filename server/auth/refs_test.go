package auth

import "testing"

func TestKindOf(t *testing.T) {
	tests := map[string]string{
		entA:   KindEnterprise,
		cliA1:  KindClient,
		accA1x: KindClientAccount,
		"master-accounts/aaaaaaaa-2222-4000-8000-000000000001": "",
		"enterprises/aaaaaaaa00004000-8000-000000000001":       "",
		"enterprises/aaaaaaaa-0000-4000-8000-00000000000g":     "",
		"enterprises/aaaaaaaa-0000-4000-8000-0000000000011":    "",
		"enterprises/": "",
		"Enterprises/aaaaaaaa-0000-4000-8000-000000000001": "",
		"": "",
	}
	for ref, want := range tests {
		got, ok := KindOf(ref)
		if got != want || ok != (want != "") {
			t.Errorf("KindOf(%q) = %q, %v; want %q", ref, got, ok, want)
		}
	}
}

func TestValidSubject(t *testing.T) {
	for sub, want := range map[string]bool{
		userSub: true, saSub: true,
		"users/": false, "users/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7": false, entA: false,
		"service-account/0e0e0e0e-4c3d-4e5f-9a1b-2c3d4e5f6a7b": false, " " + userSub: false,
	} {
		if got := ValidSubject(sub); got != want {
			t.Errorf("ValidSubject(%q) = %v, want %v", sub, got, want)
		}
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want Scope
		ok   bool
	}{
		{entA, Scope{entA, ExtentPerimeter}, true},
		{entA + ":subtree", Scope{entA, ExtentSubtree}, true},
		{cliA1 + ":perimeter", Scope{cliA1, ExtentPerimeter}, true},
		{accA1x + ":subtree", Scope{accA1x, ExtentSubtree}, true},
		{entA + ":", Scope{}, false},
		{entA + ":tree", Scope{}, false},
		{"enterprises/acme:subtree", Scope{}, false},
		{"", Scope{}, false},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
