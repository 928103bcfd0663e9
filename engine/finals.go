package engine

import "sync"

// finalCache remembers recent final states (ready, failed, cancelled,
// expired). A final record never changes again except by time (expiry, which
// view applies), so GET of a finished export — the common poll — is served
// without a ClickHouse round trip. Bounded: the oldest entry is evicted
// first. Safe for concurrent use.
type finalCache struct {
	mu    sync.Mutex
	max   int
	items map[string]Export
	order []string // ring of insertion order
	next  int
}

func newFinalCache(max int) *finalCache {
	return &finalCache{max: max, items: make(map[string]Export, max), order: make([]string, 0, max)}
}

// get returns a copy of the cached state, or nil.
func (c *finalCache) get(id string) *Export {
	c.mu.Lock()
	defer c.mu.Unlock()
	x, ok := c.items[id]
	if !ok {
		return nil
	}
	return &x
}

// put caches x if it is final.
func (c *finalCache) put(x *Export) {
	if x == nil || !Terminal(x.Status) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items[x.ID]; ok {
		if old.Version <= x.Version {
			c.items[x.ID] = *x
		}
		return
	}
	if len(c.order) < c.max {
		c.order = append(c.order, x.ID)
	} else {
		delete(c.items, c.order[c.next])
		c.order[c.next] = x.ID
		c.next = (c.next + 1) % c.max
	}
	c.items[x.ID] = *x
}
