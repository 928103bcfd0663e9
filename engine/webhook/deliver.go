package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/metrics"
)

// Store is the outbox the Deliverer works from (engine/pgstore). Every
// method blocks on the database, honours ctx and is safe for concurrent
// use.
type Store interface {
	// ClaimDeliveries claims up to n due deliveries for owner for lease,
	// at most perEndpoint under a live lease per endpoint.
	ClaimDeliveries(ctx context.Context, owner string, n, perEndpoint int, lease time.Duration) ([]*Claimed, error)
	// RecordDelivery records an attempt's outcome, fenced by the claim;
	// it returns the new state, or an error wrapping engine.ErrLost when the
	// claim was lost meanwhile.
	RecordDelivery(ctx context.Context, o Outcome, b Backoff) (string, error)
	// OldestPending is the age of the oldest undelivered event.
	OldestPending(ctx context.Context) (time.Duration, error)
	// DeleteOldDeliveries removes up to limit finished deliveries older
	// than retention and returns how many.
	DeleteOldDeliveries(ctx context.Context, retention time.Duration, limit int) (int, error)
}

// Listener is what a Store may also do: call wake (which never blocks) as
// soon as new deliveries are committed, until ctx ends or it fails (then
// Run calls it again after a second). Without it, new deliveries wait for
// the next poll.
type Listener interface {
	ListenDeliveries(ctx context.Context, wake func()) error
}

// Sender posts one delivery and returns the answer's status (*Client).
type Sender interface {
	Post(ctx context.Context, url string, h http.Header, body []byte) (int, error)
}

// Config configures a Deliverer. Store, Sender, Render and Owner are
// required.
type Config struct {
	Store  Store
	Sender Sender
	// Render returns the export resource JSON of the API for a record
	// (server.RenderExport): the data of every event.
	Render func(*engine.Export) ([]byte, error)
	// Owner names this replica in claims.
	Owner string
	// Concurrency bounds the attempts under way at once (default 16).
	Concurrency int
	// PerEndpoint bounds the attempts under way to one endpoint, across
	// all replicas (default 4; at most Concurrency): a receiver that hangs
	// holds that many attempts, each for at most the client's timeout,
	// and the other endpoints keep the rest.
	PerEndpoint int
	// Poll is how often due deliveries are looked for when there were
	// none (default 250ms; new events wake the deliverer at once when the
	// Store is a Listener, so Poll bounds the lateness of retries only).
	Poll time.Duration
	// Lease is how long a claim holds a delivery (default 30s; longer than
	// an attempt's timeout): a replica that dies holding one loses it then.
	Lease time.Duration
	// Backoff is the retry schedule (default DefaultBackoff).
	Backoff Backoff
	// Retention is how long delivered and abandoned deliveries are kept
	// for the deliveries log (default 7 days).
	Retention time.Duration
	Metrics   *metrics.Webhook // optional
	Logger    *zap.Logger      // default no-op
	Now       func() time.Time // the webhook-timestamp clock (default time.Now)
}

func (c *Config) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.PerEndpoint <= 0 {
		c.PerEndpoint = 4
	}
	c.PerEndpoint = min(c.PerEndpoint, c.Concurrency)
	if c.Poll <= 0 {
		c.Poll = 250 * time.Millisecond
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.Backoff.Base <= 0 {
		c.Backoff.Base = DefaultBackoff.Base
	}
	if c.Backoff.Max <= 0 {
		c.Backoff.Max = DefaultBackoff.Max
	}
	if c.Backoff.GiveUp <= 0 {
		c.Backoff.GiveUp = DefaultBackoff.GiveUp
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Deliverer delivers due webhook events: it claims as many as it has free
// attempt slots, attempts each in its own goroutine (signed per Standard
// Webhooks, posted through the Sender) and records the outcome. Several
// replicas run one each; the store's claims keep them from attempting the
// same event at once.
type Deliverer struct {
	cfg  Config
	log  *zap.Logger
	done chan struct{} // an attempt ended: a slot is free
	wake chan struct{} // new deliveries were committed
}

// NewDeliverer returns a deliverer; Run starts it.
func NewDeliverer(cfg Config) (*Deliverer, error) {
	cfg.setDefaults()
	if cfg.Store == nil || cfg.Sender == nil || cfg.Render == nil || cfg.Owner == "" {
		return nil, errors.New("webhook: Store, Sender, Render and Owner are required")
	}
	return &Deliverer{cfg: cfg, log: cfg.Logger, done: make(chan struct{}, cfg.Concurrency), wake: make(chan struct{}, 1)}, nil
}

// Intervals of the housekeeping done by Run.
const (
	gaugeEvery     = 5 * time.Second
	retentionEvery = 10 * time.Minute
	retentionBatch = 1000
	claimRetry     = 2 * time.Second
)

// Run delivers until ctx ends, then waits for the attempts under way
// (which ctx's end cuts short; their claims are recorded as failed
// attempts, to be retried). It owns every goroutine it starts. Call it
// once per Deliverer.
func (d *Deliverer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if l, ok := d.cfg.Store.(Listener); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.listen(ctx, l)
		}()
	}
	inFlight := 0
	tick := time.NewTimer(0)
	defer tick.Stop()
	var lastGauge, lastRetention time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.done:
			inFlight--
			d.gauge(inFlight)
			// A slot (and a place of its endpoint) is free: claim at once.
			tick.Reset(0)
			continue
		case <-d.wake:
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(lastGauge) >= gaugeEvery {
			lastGauge = now
			d.observeOldest(ctx)
		}
		if now.Sub(lastRetention) >= retentionEvery {
			lastRetention = now
			d.deleteOld(ctx)
		}
		free := d.cfg.Concurrency - inFlight
		if free > 0 {
			cs, err := d.cfg.Store.ClaimDeliveries(ctx, d.cfg.Owner, free, d.cfg.PerEndpoint, d.cfg.Lease)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("claim webhook deliveries", zap.Error(err))
				}
				tick.Reset(max(d.cfg.Poll, claimRetry)) // PostgreSQL away: no busy loop, no log flood
				continue
			}
			for _, c := range cs {
				inFlight++
				wg.Add(1)
				go func() {
					defer wg.Done()
					d.attempt(ctx, c)
					d.done <- struct{}{} // buffered for Concurrency: never blocks
				}()
			}
			d.gauge(inFlight)
		}
		tick.Reset(d.cfg.Poll)
	}
}

// listen runs the Store's LISTEN until ctx ends, again a second after
// each failure.
func (d *Deliverer) listen(ctx context.Context, l Listener) {
	wake := func() {
		select {
		case d.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	for ctx.Err() == nil {
		if err := l.ListenDeliveries(ctx, wake); err != nil && ctx.Err() == nil {
			d.log.Warn("listen for webhook deliveries", zap.Error(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (d *Deliverer) gauge(inFlight int) {
	if m := d.cfg.Metrics; m != nil {
		m.InFlight.Set(float64(inFlight))
	}
}

func (d *Deliverer) observeOldest(ctx context.Context) {
	age, err := d.cfg.Store.OldestPending(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("read oldest webhook delivery", zap.Error(err))
		}
		return
	}
	if m := d.cfg.Metrics; m != nil {
		m.OldestPending.Set(age.Seconds())
	}
}

func (d *Deliverer) deleteOld(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := d.cfg.Store.DeleteOldDeliveries(ctx, d.cfg.Retention, retentionBatch)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("delete old webhook deliveries", zap.Error(err))
			}
			return
		}
		if n < retentionBatch {
			return
		}
	}
}

// Body renders an event's body: {"type", "timestamp", "data"} with data the
// export resource. It depends only on the delivery, so it is the same on
// every retry.
func Body(c *Claimed, render func(*engine.Export) ([]byte, error)) ([]byte, error) {
	data, err := render(c.Export)
	if err != nil {
		return nil, fmt.Errorf("render export %s: %w", c.ExportID, err)
	}
	typ, _ := json.Marshal(c.Type)
	ts, _ := json.Marshal(c.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z"))
	b := make([]byte, 0, len(data)+len(typ)+len(ts)+40)
	b = append(b, `{"type":`...)
	b = append(b, typ...)
	b = append(b, `,"timestamp":`...)
	b = append(b, ts...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	return b, nil
}

// attempt makes one attempt of c and records its outcome.
func (d *Deliverer) attempt(ctx context.Context, c *Claimed) {
	start := time.Now()
	o := Outcome{ID: c.ID, Owner: d.cfg.Owner, Epoch: c.Epoch}
	body, err := Body(c, d.cfg.Render)
	var key []byte
	if err == nil {
		key, err = DecodeSecret(c.Secret)
	}
	if err != nil {
		o.Error = err.Error()
	} else {
		ts := d.cfg.Now().Unix()
		h := http.Header{
			"Content-Type":      {"application/json"},
			"User-Agent":        {"exportd-webhooks"},
			"Webhook-Id":        {c.ID},
			"Webhook-Timestamp": {strconv.FormatInt(ts, 10)},
			"Webhook-Signature": {Sign(key, c.ID, ts, body)},
		}
		o.Status, err = d.cfg.Sender.Post(ctx, c.URL, h, body)
		switch {
		case err != nil:
			o.Error = err.Error()
		case o.Status >= 200 && o.Status < 300:
			o.OK = true
		default:
			o.Error = "HTTP " + strconv.Itoa(o.Status)
		}
	}
	if m := d.cfg.Metrics; m != nil {
		m.Attempts.Inc()
		m.AttemptDuration.Observe(time.Since(start).Seconds())
	}
	// Recorded even when ctx ended (shutdown): the claim is released now
	// rather than when its lease runs out.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	state, err := d.cfg.Store.RecordDelivery(rctx, o, d.cfg.Backoff)
	outcome := ""
	switch {
	case errors.Is(err, engine.ErrLost):
		outcome = metrics.WebhookLost
	case err != nil:
		d.log.Warn("record webhook delivery", zap.String("delivery_id", c.ID), zap.Error(err))
		return // the lease runs out and the delivery is retried
	case state == StateDelivered:
		outcome = metrics.WebhookDelivered
	case state == StateAbandoned:
		outcome = metrics.WebhookAbandoned
		d.log.Warn("webhook delivery abandoned", zap.String("delivery_id", c.ID), zap.String("endpoint_id", c.EndpointID),
			zap.String("export_id", c.ExportID), zap.Int("attempts", c.Attempts), zap.String("error", o.Error))
	default:
		outcome = metrics.WebhookRetry
	}
	if m := d.cfg.Metrics; m != nil {
		m.Deliveries.WithLabelValues(outcome).Inc()
	}
}
