package main

import (
	"context"
	"net/http"
	"time"
)

// probeRec is one timed diagnostic probe.
type probeRec struct {
	latency time.Duration
	ok      bool
}

// probeLoop times GET /healthz every 100ms: exportd's HTTP path with no
// token, no ClickHouse and no PostgreSQL, the floor of any response
// (scheduling, network, fasthttp). (It used to time the GET's record query
// on ClickHouse too; the records live in PostgreSQL since issue 11, and
// the server's own get/list histograms cover that path.) It books them to
// the current phase until ctx ends.
func (l *loader) probeLoop(ctx context.Context, logf func(string, ...any)) {
	client := newClient()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := l.current.Load()
		if p == nil {
			continue
		}
		start := time.Now()
		var ok bool
		req, _ := http.NewRequestWithContext(ctx, "GET", l.env.base+"/healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
		rec := probeRec{latency: time.Since(start), ok: ok}
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.healthz = append(p.healthz, rec)
		p.mu.Unlock()
	}
}
