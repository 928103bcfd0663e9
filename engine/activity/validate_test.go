package activity

import (
	"math/rand"
	"testing"
	"time"
)

func TestAppendTimestampMatchesTimeFormat(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	check := func(ms int64) {
		got := string(AppendTimestamp(nil, ms))
		want := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
		if got != want {
			t.Fatalf("AppendTimestamp(%d) = %s, want %s", ms, got, want)
		}
	}
	for _, ms := range []int64{0, 1, 999, 86_399_999, 86_400_000, 951_782_400_000, MaxTimestamp} {
		check(ms)
	}
	for i := 0; i < 200000; i++ {
		check(rng.Int63n(MaxTimestamp))
	}
}

func TestParseTimestampMillis(t *testing.T) {
	good := map[string]int64{
		"1970-01-01T00:00:00Z":          0,
		"2026-04-01T10:15:30.123Z":      1775038530123,
		"2026-04-01T10:15:30.1Z":        1775038530100,
		"2026-04-01T10:15:30.120+00:00": 1775038530120,
	}
	for s, want := range good {
		got, err := ParseTimestampMillis(s)
		if err != nil || got != want {
			t.Errorf("ParseTimestampMillis(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "2026-04-01", "2026-04-01T10:15:30.1234Z", "2026-04-01T10:15:30+01:00",
		"2026-04-01 10:15:30Z", "2026-13-01T10:15:30Z", "2026-04-01T10:15:30", "1775038530123"} {
		if _, err := ParseTimestampMillis(s); err == nil {
			t.Errorf("ParseTimestampMillis(%q) accepted", s)
		}
	}
}

func TestValidRef(t *testing.T) {
	u := "b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
	if !ValidRef("enterprises/"+u, PrefixEnterprise) || ValidRef("clients/"+u, PrefixEnterprise) ||
		ValidRef("enterprises/"+u[:35], PrefixEnterprise) || ValidRef("enterprises/B8E2F1A0-4C3D-4E5F-9A1B-2C3D4E5F6A7B", PrefixEnterprise) {
		t.Fatal("ValidRef misjudges")
	}
}
