package admission

import (
	"fmt"
	"time"
)

// Defaults applied by [Config] for zero fields.
const (
	// DefaultMax is the default hard cap on running exports (EXPORTD_MAX_EXPORTS, SPEC §4).
	DefaultMax = 4
	// DefaultQueueTimeout is the default longest wait in the queue. Two seconds is far below the
	// client's Prefer: wait default (10s), so a shed create still leaves the client time to retry,
	// and short enough that a queue that does not drain sheds fast instead of holding connections.
	DefaultQueueTimeout = 2 * time.Second
	// queueSizePerSlot is the default queue length per slot of Max: four waiting creates per
	// running export bound the memory of waiters (a few hundred bytes each) and, with the queue
	// timeout, the time a request can be held.
	queueSizePerSlot = 4
)

// Config configures a [Limiter]. The zero value is valid: every zero field takes its default.
type Config struct {
	// Max is the hard cap on concurrently running exports (EXPORTD_MAX_EXPORTS): the adaptive
	// limit never exceeds it. Default 4.
	Max int
	// Min is the floor of the adaptive limit. Default 1. 1 <= Min <= Max.
	Min int
	// Initial is the starting limit. Default Max: until the controller has evidence of
	// overload, the service behaves as a fixed limit of Max. Min <= Initial <= Max.
	Initial int
	// QueueSize is the number of creates that may wait for a slot beyond the limit. When the
	// queue is full, Acquire sheds at once. Default 4*Max; negative disables the queue (a create
	// that finds every slot busy is shed at once).
	QueueSize int
	// QueueTimeout is the longest time a create waits in the queue before it is shed. Default 2s.
	QueueTimeout time.Duration
	// Now is the clock of the controller and of the drain-rate estimate (not of the queue
	// deadline, which is a real timer). It is called with the limiter's lock held. Default
	// time.Now. Tests and simulations inject a fake.
	Now func() time.Time
	// OnChange, when set, is called with the limit, the number of running exports and the number
	// of queued creates by New and after every change of any of them, for metrics gauges. It is
	// called
	// synchronously with the limiter's lock held, so calls arrive in order; it must be fast and
	// must not call the Limiter.
	OnChange func(limit, inFlight, queued int)
}

func (c *Config) setDefaults() {
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	if c.Min == 0 {
		c.Min = 1
	}
	if c.Initial == 0 {
		c.Initial = c.Max
	}
	switch {
	case c.QueueSize == 0:
		c.QueueSize = queueSizePerSlot * c.Max
	case c.QueueSize < 0:
		c.QueueSize = 0
	}
	if c.QueueTimeout == 0 {
		c.QueueTimeout = DefaultQueueTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first invalid setting. New calls it after filling in defaults.
func (c *Config) Validate() error {
	if c.Max < 1 {
		return fmt.Errorf("admission config: max %d: must be at least 1", c.Max)
	}
	if c.Min < 1 || c.Min > c.Max {
		return fmt.Errorf("admission config: min %d: must be within 1-%d (max)", c.Min, c.Max)
	}
	if c.Initial < c.Min || c.Initial > c.Max {
		return fmt.Errorf("admission config: initial %d: must be within %d-%d (min-max)", c.Initial, c.Min, c.Max)
	}
	if c.QueueTimeout < 0 {
		return fmt.Errorf("admission config: queue timeout %s: must not be negative", c.QueueTimeout)
	}
	return nil
}
