package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// burstPhase is a burst on new connections: shed answers of the given
// latencies (alternately 503 overloaded and 429) and /healthz probes.
func burstPhase(shed, healthz []time.Duration) *phase {
	start := time.Unix(1_800_000_000, 0)
	p := &phase{name: "burst 30x", multiple: 30, rate: 300, start: start, end: start.Add(10 * time.Second),
		client: newConnClient(), healthzShare: 0.2}
	for i, d := range shed {
		rec := createRec{start: start.Add(time.Millisecond), latency: d, status: http.StatusServiceUnavailable, reason: "overloaded"}
		if i%2 == 1 {
			rec.status, rec.reason = http.StatusTooManyRequests, "rate_limited"
		}
		p.creates = append(p.creates, rec)
	}
	for _, d := range healthz {
		p.burstHealthz = append(p.burstHealthz, probeRec{latency: d, ok: true})
	}
	return p
}

func ramp(n int, lo, hi time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = lo + time.Duration(i)*(hi-lo)/time.Duration(n-1)
	}
	return out
}

func TestBurstShedAgainstHealthz(t *testing.T) {
	for _, tc := range []struct {
		name    string
		shed    []time.Duration
		healthz []time.Duration
		pass    bool
	}{
		// p99 of 100: the 99th value. Shed 1..10 ms (p99 9.9), /healthz 1..8 ms (p99 7.9): 1.25x.
		{"within 1.5x", ramp(100, time.Millisecond, 10*time.Millisecond), ramp(100, time.Millisecond, 8*time.Millisecond), true},
		// Shed tail 1..30 ms against /healthz 1..12 ms: 2.4x.
		{"tail of the sheds", ramp(100, time.Millisecond, 30*time.Millisecond), ramp(100, time.Millisecond, 12*time.Millisecond), false},
		{"no sheds", nil, ramp(100, time.Millisecond, 8*time.Millisecond), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := summarize(burstPhase(tc.shed, tc.healthz), 30)
			if !s.NewConnections || s.ShedAny != len(tc.shed) || s.HealthzNewConn != len(tc.healthz) {
				t.Fatalf("summary %+v", s)
			}
			if len(tc.shed) > 0 && (s.Shed == 0 || s.RateLimited == 0) {
				t.Errorf("503 %d and 429 %d: both kinds should count as shed", s.Shed, s.RateLimited)
			}
			s.ArrivalsPerSec = 300
			r := &report{Capacity: result{GoodputExportsPerSec: 10}, Levels: []result{{Name: "1x", Multiple: 1}, {Name: "10x", Multiple: 10}}, Burst: &s}
			r.evaluate()
			var got *target
			for i := range r.Targets {
				if strings.HasPrefix(r.Targets[i].Name, "shed p99 ≤ 1.5x healthz p99") {
					got = &r.Targets[i]
				}
			}
			if got == nil {
				t.Fatalf("no burst target in %+v", r.Targets)
			}
			if got.Pass != tc.pass {
				t.Errorf("pass %v, want %v: %s", got.Pass, tc.pass, got.Got)
			}
			// The same answers from a burst that only reached 20x capacity prove nothing.
			s.ArrivalsPerSec = 200
			r.evaluate()
			for _, x := range r.Targets {
				if strings.HasPrefix(x.Name, "shed p99 ≤ 1.5x healthz p99") && x.Pass {
					t.Errorf("a burst of 20x capacity passes: %s", x.Got)
				}
			}
		})
	}
}
