package engine

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Slot is one running slot of this replica: server/admission's adaptive
// permit, or one of the engine's fixed MaxExports. Release is called exactly
// once, with the export's final state (nil when it never ran).
type Slot interface {
	Release(x *Export, elapsed time.Duration)
}

// SlotFunc adapts a function to Slot.
type SlotFunc func(x *Export, elapsed time.Duration)

// Release calls f.
func (f SlotFunc) Release(x *Export, elapsed time.Duration) { f(x, elapsed) }

// SlotSource hands out slots without waiting (server/admission's
// Limiter through an adapter); nil in Config means MaxExports fixed slots.
type SlotSource interface {
	TryAcquire() (Slot, bool)
}

// SlotReserver is a SlotSource whose slots a waiting job can also queue
// for, in turn with the creates that wait for one (server/admission's
// FIFO). Without it a pending export takes a slot only at a moment when no
// create waits, which under sustained load never comes: bench/overload at
// 10x kept a few pending exports waiting 20 s and more.
type SlotReserver interface {
	SlotSource
	// Reserve takes a place in the queue; ready is called, without
	// blocking, when the slot has been handed over.
	Reserve(ready func()) Reservation
}

// Reservation is a job's place in a SlotReserver's queue.
type Reservation interface {
	// Take returns the slot once handed over; false before that.
	Take() (Slot, bool)
	// Cancel gives the place up (and a slot handed over but not taken).
	Cancel()
}

// fixedSlots is the engine's own SlotSource: n slots.
type fixedSlots struct {
	mu   sync.Mutex
	free int
	poke func()
}

func (f *fixedSlots) TryAcquire() (Slot, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.free == 0 {
		return nil, false
	}
	f.free--
	var once sync.Once
	return SlotFunc(func(*Export, time.Duration) {
		once.Do(func() {
			f.mu.Lock()
			f.free++
			f.mu.Unlock()
			f.poke()
		})
	}), true
}

// scheduler holds the jobs of this replica waiting to start, one FIFO per
// enterprise, and hands running slots out round-robin between the
// enterprises that wait: one enterprise's backlog delays another's export
// by at most one export's duration. Each enterprise also runs at most
// MaxPerEnterprise exports on all replicas together (the record store's
// Start counts them under the enterprise's lock).
type scheduler struct {
	mu      sync.Mutex
	queues  map[string][]*job
	ring    []string       // enterprises with waiting jobs, in arrival order
	holding map[string]int // jobs of this replica holding a slot, by enterprise
	// served is when each enterprise with waiting or running jobs last
	// started one: the turn goes to the least recently served (one never
	// served first), so a tenant that just got a slot waits behind every
	// other waiting tenant. Kept only while the enterprise waits or runs.
	served map[string]uint64
	tick   uint64
	// busy: enterprises the record store last found at their cap.
	busy map[string]bool
}

func (s *scheduler) enqueue(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent := j.exp.EnterpriseRef
	if len(s.queues[ent]) == 0 {
		s.ring = append(s.ring, ent)
	}
	s.queues[ent] = append(s.queues[ent], j)
}

// claim takes j out of its queue for a start attempt; false if it is no
// longer there (its job gave up waiting).
func (s *scheduler) claim(j *job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(j)
}

// requeue puts a claimed job back at the head of its enterprise's queue.
func (s *scheduler) requeue(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent := j.exp.EnterpriseRef
	if len(s.queues[ent]) == 0 {
		s.ring = append(s.ring, ent)
	}
	s.queues[ent] = append([]*job{j}, s.queues[ent]...)
}

func (s *scheduler) removeLocked(j *job) bool {
	ent := j.exp.EnterpriseRef
	q := s.queues[ent]
	for i, w := range q {
		if w != j {
			continue
		}
		q = append(q[:i:i], q[i+1:]...)
		if len(q) > 0 {
			s.queues[ent] = q
			return true
		}
		delete(s.queues, ent)
		if s.holding[ent] == 0 {
			delete(s.served, ent)
		}
		for k, r := range s.ring {
			if r == ent {
				s.ring = append(s.ring[:k], s.ring[k+1:]...)
				break
			}
		}
		return true
	}
	return false
}

// heads returns the next job of every enterprise with waiting jobs, the
// least recently served enterprise first. An enterprise's next job is its
// first one already holding a slot (taken at admission), else its first:
// a job admitted with a slot may queue behind one admitted without (its
// enterprise's share freed between the two creates), and the slot-less one
// cannot start while the slot holders fill the share, so trying only the
// first would leave both waiting for ever (found by bench/overload).
func (s *scheduler) heads() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	ents := slices.Clone(s.ring)
	slices.SortStableFunc(ents, func(a, b string) int { return cmp.Compare(s.served[a], s.served[b]) })
	out := make([]*job, 0, len(ents))
	for _, ent := range ents {
		out = append(out, nextOf(s.queues[ent]))
	}
	return out
}

// nextOf is the job of q to try next: the first holding a slot, else the
// first holding a place in the slot queue (its slot may have been handed
// over: tried first, it is not left idle), else the first.
func nextOf(q []*job) *job {
	var reserved *job
	for _, j := range q {
		if j.slot != nil {
			return j
		}
		if reserved == nil && j.res != nil {
			reserved = j
		}
	}
	if reserved != nil {
		return reserved
	}
	return q[0]
}

// started records that ent was served now (its job was claimed and started).
func (s *scheduler) started(ent string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick++
	s.served[ent] = s.tick
}

// shareTaken reports whether ent's jobs here hold (or are taking at
// admission) all of its MaxPerEnterprise slots.
func (e *Engine) shareTaken(ent string) bool {
	e.sched.mu.Lock()
	defer e.sched.mu.Unlock()
	return e.atShareLocked(ent)
}

// isBusy, setBusy and clearBusy keep the record store's last "at its cap"
// verdict per enterprise (see dispatch).
func (s *scheduler) isBusy(ent string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[ent]
}

func (s *scheduler) setBusy(ent string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy[ent] = true
}

func (s *scheduler) clearBusy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.busy)
}

func (s *scheduler) hold(ent string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d < 0 {
		delete(s.busy, ent) // one of its slots here is free: ask again
	}
	s.holding[ent] += d
	if s.holding[ent] <= 0 {
		delete(s.holding, ent)
		if len(s.queues[ent]) == 0 {
			delete(s.served, ent)
		}
	}
}

// ClaimShare reserves one of enterprise's running slots on this replica
// for a slot its caller is about to take at admission (and then passes to
// SubmitWith): true while the enterprise's jobs here hold fewer than
// MaxPerEnterprise slots. False means the export should be submitted
// without a slot: it waits pending, slot-less, and starts in turn, so one
// tenant's backlog never holds the slots (or the admission queue) that
// other tenants need. A claim that is not followed by SubmitWith with a
// slot is returned with ReturnShare.
func (e *Engine) ClaimShare(enterprise string) bool {
	e.sched.mu.Lock()
	defer e.sched.mu.Unlock()
	if e.atShareLocked(enterprise) || e.sched.slotlessWaitingLocked(enterprise) {
		return false
	}
	e.sched.holding[enterprise]++
	return true
}

// slotlessWaitingLocked reports whether ent has a job waiting here without
// a slot: a new create then waits behind it, slot-less too, instead of
// claiming the share it waits for (which would starve it).
func (s *scheduler) slotlessWaitingLocked(ent string) bool {
	for _, j := range s.queues[ent] {
		if j.slot == nil {
			return true
		}
	}
	return false
}

func (e *Engine) atShareLocked(enterprise string) bool {
	return e.cfg.MaxPerEnterprise > 0 && e.sched.holding[enterprise] >= e.cfg.MaxPerEnterprise
}

// ReturnShare gives back a ClaimShare that took no slot.
func (e *Engine) ReturnShare(enterprise string) { e.sched.hold(enterprise, -1) }

// poke wakes the dispatcher.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// dispatchLoop starts waiting jobs when slots free up, when jobs arrive
// and, for caps that other replicas' exports release, every 500 ms.
func (e *Engine) dispatchLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-t.C:
			e.sched.clearBusy()
		}
		e.dispatch(ctx)
	}
}

// dispatch starts as many waiting jobs as slots and caps allow, one
// enterprise's turn at a time.
func (e *Engine) dispatch(ctx context.Context) {
	for ctx.Err() == nil {
		progressed := false
		for _, j := range e.sched.heads() {
			if !e.sched.claim(j) {
				continue // gave up waiting meanwhile
			}
			acquired := false
			if j.slot == nil && e.shareTaken(j.exp.EnterpriseRef) {
				// Its enterprise's jobs here hold its whole share (running,
				// or admitted with a slot and about to start): it cannot
				// start, and neither takes a slot nor queues for one to ask
				// the record store. A slot it held, even for that round trip
				// (or one an admitted export of its enterprise then kept,
				// refused busy because this one started first), was one
				// another tenant's create could not get: issue 13's tenant B
				// was shed under A's backlog. No create of an enterprise with
				// slot-less jobs waiting claims a share (ClaimShare), so the
				// share frees up for them.
				e.cancelReservation(j)
				e.putBack(j)
				continue
			}
			if j.slot == nil && e.sched.isBusy(j.exp.EnterpriseRef) {
				// The record store said its enterprise is at its cap, and
				// none of its exports here has ended since: asking again
				// costs a PostgreSQL round trip under the enterprise's lock
				// on every dispatch, ahead of other tenants' starts (issue
				// 13: a small export of B queued behind A's backlog). The
				// verdict lapses when one of its exports here releases its
				// slot and at every tick (other replicas' exports end too).
				// (Judging from the local share instead hung: it counts the
				// creates still waiting for an admission permit.) Its place
				// in the slot queue goes too: a slot handed to it would idle.
				e.cancelReservation(j)
				e.putBack(j)
				continue
			}
			if j.slot == nil {
				s, ok := e.takeSlot(j)
				if !ok {
					e.putBack(j)
					continue // a job holding a slot already may still start
				}
				j.slot, acquired = s, true
				e.sched.hold(j.exp.EnterpriseRef, 1)
			}
			err := e.cfg.Records.Start(ctx, j.exp.ID, j.exp.Owner, j.exp.Version, j.exp.EnterpriseRef, e.cfg.MaxPerEnterprise)
			// At its cap (busy), the control plane unreachable, or stopping:
			// the job waits for a later turn rather than failing.
			if errors.Is(err, ErrBusy) {
				e.sched.setBusy(j.exp.EnterpriseRef)
			}
			if errors.Is(err, ErrBusy) || errors.Is(err, ErrControlPlaneUnavailable) || (err != nil && ctx.Err() != nil) {
				if acquired {
					e.dropSlot(j)
				}
				if j.lane != nil {
					j.lane() // it waits: no longer urgent (once-guarded)
				}
				e.putBack(j)
				continue
			}
			e.sched.started(j.exp.EnterpriseRef)
			j.grant <- err
			progressed = true
			break // next turn: the next enterprise
		}
		if !progressed {
			return
		}
	}
}

// takeSlot takes a slot for the claimed job j: from its place in the slot
// queue when the source has one (taken now if none is queued), else
// without waiting.
func (e *Engine) takeSlot(j *job) (Slot, bool) {
	r, ok := e.slots.(SlotReserver)
	if !ok {
		return e.slots.TryAcquire()
	}
	if j.res == nil {
		j.res = r.Reserve(e.poke)
	}
	s, ok := j.res.Take()
	if ok {
		j.res = nil
	}
	return s, ok
}

// cancelReservation gives up the claimed (or no longer waiting) job's place
// in the slot queue, if it has one.
func (e *Engine) cancelReservation(j *job) {
	if j.res != nil {
		j.res.Cancel()
		j.res = nil
	}
}

// putBack requeues a claimed job, or, when it has given up waiting
// (cancelled, shutdown), hands it its cause so that it ends now.
func (e *Engine) putBack(j *job) {
	if cause := context.Cause(j.ctx); cause != nil {
		e.cancelReservation(j)
		j.grant <- errNotStarted
		return
	}
	e.sched.requeue(j)
}

// dropSlot returns a slot the job took but cannot use yet.
func (e *Engine) dropSlot(j *job) {
	s := j.slot
	j.slot = nil
	e.sched.hold(j.exp.EnterpriseRef, -1)
	s.Release(nil, 0)
}

// errNotStarted tells a waiting job that gave up that it never started.
var errNotStarted = errors.New("not started")
