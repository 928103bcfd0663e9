package activity

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendTimestampInMatchesTimeFormat checks the allocation-free zone
// rendering against time.Format over random instants of 1970-9999 and the
// hours around DST transitions, in zones with odd offsets.
func TestAppendTimestampInMatchesTimeFormat(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000Z07:00"
	zones := []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
		"Pacific/Chatham", "America/St_Johns", "Pacific/Kiritimati", "America/Sao_Paulo", "Europe/London", "Etc/GMT+12"}
	rng := rand.New(rand.NewPCG(1, 2))
	var instants []int64
	for range 2000 {
		instants = append(instants, MinTimestamp+rng.Int64N(MaxTimestamp-MinTimestamp))
	}
	// Around the 2026 transitions in Europe and the US, millisecond by millisecond at the edges.
	for _, edge := range []time.Time{
		time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC),
	} {
		for d := int64(-2); d <= 2; d++ {
			instants = append(instants, edge.UnixMilli()+d, edge.UnixMilli()+d*3_600_000)
		}
	}
	for _, name := range zones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, ms := range instants {
			want := time.UnixMilli(ms).In(loc).Format(layout)
			if got := string(AppendTimestampIn(nil, ms, loc)); got != want {
				t.Fatalf("%s %d: got %s, want %s", name, ms, got, want)
			}
		}
	}
	if got := string(AppendTimestampIn(nil, 0, nil)); got != "1970-01-01T00:00:00.000Z" {
		t.Fatalf("nil location: %s", got)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	dst := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(1000, func() { dst = AppendTimestampIn(dst[:0], instants[7], paris) }); n != 0 {
		t.Fatalf("AppendTimestampIn allocates %.1f times", n)
	}
}

func TestColumnsMetadata(t *testing.T) {
	if len(Columns) != NumColumns || Columns[ColReference] != "reference" || Columns[ColSettledAt] != "settled_at_utc" {
		t.Fatal("column indices disagree with Columns")
	}
	for i, name := range Columns {
		if ColumnIndex(name) != i {
			t.Fatalf("ColumnIndex(%s) = %d", name, ColumnIndex(name))
		}
	}
	if ColumnIndex("Amount") != -1 || ColumnIndex("") != -1 {
		t.Fatal("unknown names must be -1")
	}
	n := 0
	for _, o := range Optional {
		if o {
			n++
		}
	}
	if n != 7 || Optional[ColAmount] || !Optional[ColFeeAmount] {
		t.Fatal("optional columns")
	}
	for _, c := range []struct {
		s  string
		ok bool
	}{{"USDC", true}, {"€", true}, {"ABCDEFGHIJKLMNOP", true}, {"ABCDEFGHIJKLMNOPQ", false}, {"", false},
		{"US D", false}, {"USD\n", false}, {"\u00a0USD", false}, {"US\x00", false}, {"\xff", false}, {"=1+1", true}} {
		if ValidCurrency(c.s) != c.ok {
			t.Errorf("ValidCurrency(%q) = %v", c.s, !c.ok)
		}
	}
}
