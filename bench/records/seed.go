package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine"
)

// generator makes the seeded history, deterministically for a seed (ids included) but for the
// enterprise refs, which are fresh per run.
type generator struct {
	cfg     config
	env     *env
	dep     *deployment
	rng     *rand.Rand
	now     time.Time
	users   []string
	seeded  int
	largeN  int      // records of the large enterprise so far
	sample  []string // a uniform sample of the large enterprise's ids (reservoir), for gets
	statusN map[string]int
}

const sampleSize = 10000

func newGenerator(cfg config, e *env, d *deployment, stream uint64) *generator {
	g := &generator{cfg: cfg, env: e, dep: d, rng: rand.New(rand.NewPCG(cfg.seed, stream)), now: time.Now().UTC(),
		statusN: map[string]int{}}
	for range 50 {
		g.users = append(g.users, "users/"+g.uuid())
	}
	return g
}

func (g *generator) uuid() string {
	var b uuid.UUID
	for i := 0; i < 16; i += 8 {
		v := g.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return b.String()
}

var (
	compressions = []string{"none", "none", "gzip", "zstd"}
	failures     = []string{engine.ReasonUpstream, engine.ReasonTimeout, engine.ReasonShutdown, engine.ReasonStorage}
)

// next makes record k of n of a seeding phase. The phase spans the whole history in time order,
// generated_at rising from -history ago to now with k (jittered within its slot): records are
// inserted as exportd inserts them, oldest first, so the table's physical layout is the one a
// live system has (an enterprise's newest records share the newest heap pages) and not the
// scatter a random order would give. A ready export lives 24 hours (EXPORTD_RETENTION's
// default), so only the last day's successes are still ready, the older ones expired; 15% failed
// and 10% cancelled throughout.
func (g *generator) next(k, n int) *engine.Export {
	ent := g.env.large
	large := g.rng.Float64() < g.cfg.largeShare
	if !large {
		ent = g.env.small[g.rng.IntN(len(g.env.small))]
	}
	x := &engine.Export{ID: g.uuid(), Format: "csv", Compression: compressions[g.rng.IntN(len(compressions))],
		ScopeKind: engine.KindEnterprise, ScopeRef: ent, EnterpriseRef: ent, GeneratedBy: g.users[g.rng.IntN(len(g.users))],
		Owner: "replica-seed"}
	switch r := g.rng.IntN(20); {
	case r < 3: // a client's exports
		x.ScopeKind, x.ClientRef = engine.KindClient, "clients/"+g.uuid()
		x.ScopeRef = x.ClientRef
	case r < 4: // an account's
		x.ScopeKind, x.ClientRef, x.ScopeRef = engine.KindClientAccount, "clients/"+g.uuid(), "client-accounts/"+g.uuid()
	}
	month := time.Date(2026, time.Month(1+g.rng.IntN(11)), 1, 0, 0, 0, 0, time.UTC)
	x.DateFrom = month.Format("2006-01-02T15:04:05.000Z")
	x.DateTo = month.AddDate(0, 1, 0).Add(-time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	x.StorageLocation = "file://" + filepath.Join(g.dep.exports, x.ObjectName())

	slot := float64(g.cfg.history) / float64(n)
	age := float64(g.cfg.history) - (float64(k)+g.rng.Float64())*slot
	x.GeneratedAt = g.now.Add(-time.Duration(age)).Truncate(time.Millisecond)
	x.FinishedAt = x.GeneratedAt.Add(200*time.Millisecond + time.Duration(g.rng.Int64N(int64(2*time.Minute))))
	if x.FinishedAt.After(g.now) {
		x.FinishedAt = g.now
	}
	switch r := g.rng.IntN(100); {
	case r < 15:
		x.Status, x.FailureReason = engine.StatusFailed, failures[g.rng.IntN(len(failures))]
		x.RowCount = g.rng.Int64N(200_000)
	case r < 25:
		x.Status = engine.StatusCancelled
		x.RowCount = g.rng.Int64N(200_000)
	default:
		x.ExpiresAt = x.FinishedAt.Add(24 * time.Hour)
		x.Status = engine.StatusExpired
		if x.ExpiresAt.After(g.now) {
			x.Status = engine.StatusReady
		}
		x.RowCount = g.rng.Int64N(2_000_000)
		x.ByteSize = x.RowCount * 385
		var sum [32]byte
		for i := 0; i < 32; i += 8 {
			v := g.rng.Uint64()
			for j := range 8 {
				sum[i+j] = byte(v >> (8 * j))
			}
		}
		x.Checksum = hex.EncodeToString(sum[:])
	}
	g.statusN[x.Status]++
	if large {
		g.largeN++
		if len(g.sample) < sampleSize {
			g.sample = append(g.sample, x.ID)
		} else if j := g.rng.IntN(g.largeN); j < sampleSize {
			g.sample[j] = x.ID
		}
	}
	return x
}

// seedTo imports records until the table holds upTo seeded records, in batches of one COPY,
// printing progress (rows/s, ETA) every few seconds.
func (g *generator) seedTo(ctx context.Context, upTo int, logf func(string, ...any)) (time.Duration, error) {
	start, lastLog := time.Now(), time.Now()
	from := g.seeded
	batch := make([]*engine.Export, 0, g.cfg.batch)
	for g.seeded < upTo {
		n := min(g.cfg.batch, upTo-g.seeded)
		batch = batch[:0]
		for i := range n {
			batch = append(batch, g.next(g.seeded-from+i, upTo-from))
		}
		if err := g.dep.store.Import(ctx, batch); err != nil {
			return time.Since(start), fmt.Errorf("seed records %d-%d: %w", g.seeded, g.seeded+n, err)
		}
		g.seeded += n
		if time.Since(lastLog) >= 3*time.Second || g.seeded == upTo {
			lastLog = time.Now()
			el := time.Since(start).Seconds()
			rate := float64(g.seeded-from) / el
			eta := float64(upTo-g.seeded) / rate
			logf("%s: seeded %d / %d records (%.0f%%), %.0f records/s, ETA %.0fs", g.dep.db, g.seeded, upTo,
				100*float64(g.seeded)/float64(upTo), rate, eta)
		}
	}
	return time.Since(start), nil
}
