package main

import (
	"context"
	"net/http"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/chconn"
)

// probeRec is one timed diagnostic probe.
type probeRec struct {
	latency time.Duration
	ok      bool
}

// probeLoop separates where read latency comes from. Every 100ms, alternately, it times
//
//   - GET /healthz: exportd's HTTP path with no token and no ClickHouse, the floor of any
//     response (scheduling, network, fasthttp);
//   - the query behind GET of one export, sent to ClickHouse directly: the latest record of the
//     known ready export.
//
// Every second it also counts the active parts of the export records table: every record write
// is an insert, hence a part, and a lookup reads every part's index.
//
// It books them to the current phase until ctx ends.
func (l *loader) probeLoop(ctx context.Context, logf func(string, ...any)) {
	chCfg, err := chconn.ParseDSN(l.env.ch.DSN())
	if err != nil {
		logf("probe: %v", err)
		return
	}
	c, err := chCfg.DialNative(ctx) // ch-go's client misreads results of old servers (see chconn)
	if err != nil {
		logf("probe: dial ClickHouse: %v", err)
		return
	}
	defer c.Close()
	client := newClient()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	logged := false
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p, id := l.current.Load(), l.readyID.Load()
		if p == nil || id == nil {
			continue
		}
		start := time.Now()
		var ok bool
		if n%2 == 0 {
			req, _ := http.NewRequestWithContext(ctx, "GET", l.env.base+"/healthz", nil)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				ok = resp.StatusCode == http.StatusOK
			}
		} else {
			var status proto.ColStr
			rows := 0
			err := c.Select(ctx, "SELECT status FROM operations_activity_exports WHERE id = '"+*id+"' ORDER BY version DESC LIMIT 1",
				proto.Results{{Name: "status", Data: &status}}, func(n int) error { rows += n; return nil }, nil)
			ok = err == nil && rows == 1
			if err != nil && !logged && ctx.Err() == nil {
				logf("probe: the GET query on ClickHouse: %v", err)
				logged = true
			}
		}
		rec := probeRec{latency: time.Since(start), ok: ok}
		parts := -1
		if n%10 == 1 {
			var cnt proto.ColUInt64
			err := c.Select(ctx, "SELECT count() AS n FROM system.parts WHERE active AND database = currentDatabase() AND table = 'operations_activity_exports'",
				proto.Results{{Name: "n", Data: &cnt}}, func(int) error { return nil }, nil)
			if err == nil && cnt.Rows() == 1 {
				parts = int(cnt.Row(0))
			}
		}
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		if n%2 == 0 {
			p.healthz = append(p.healthz, rec)
		} else {
			p.chGet = append(p.chGet, rec)
		}
		if parts >= 0 {
			p.recordParts = append(p.recordParts, float64(parts))
		}
		p.mu.Unlock()
	}
}
