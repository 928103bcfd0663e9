package engine

import (
	"context"
	"time"
)

// Get returns the current state of an export: live progress for a job of
// this replica, else its record (a primary-key read).
func (e *Engine) Get(ctx context.Context, id string) (*Export, error) {
	if j := e.local(id); j != nil {
		x := j.snapshot()
		if Terminal(x.Status) {
			return x, nil
		}
		// The job runs here, but another replica may have ended it already
		// (a cancel through it, or a lost-lease verdict) before this one's
		// next heartbeat: the recorded final state wins, as in List. With
		// the records unreachable, the job's own view.
		if r, err := e.cfg.Records.Get(ctx, id); err == nil && Terminal(r.Status) {
			// And the job stops now rather than at its next heartbeat
			// (its temp file goes with it), as the heartbeat would.
			if r.Status == StatusCancelled {
				j.cancel(errCancelled)
			} else {
				j.cancel(errShutdown)
			}
			return r, nil
		}
		return x, nil
	}
	if x := e.unsavedState(id); x != nil {
		return x, nil
	}
	return e.cfg.Records.Get(ctx, id)
}

// unsavedState returns a copy of a final state not yet recorded, or nil.
func (e *Engine) unsavedState(id string) *Export {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u := e.unsaved[id]; u != nil {
		y := u.state
		return &y
	}
	return nil
}

// List returns visible exports, newest first, with the same view as Get.
func (e *Engine) List(ctx context.Context, v Visibility, after *Cursor, limit int) ([]*Export, error) {
	list, err := e.cfg.Records.List(ctx, v, after, limit)
	if err != nil {
		return nil, err
	}
	for i, x := range list {
		if Terminal(x.Status) {
			continue
		}
		if j := e.local(x.ID); j != nil {
			list[i] = j.snapshot()
		} else if u := e.unsavedState(x.ID); u != nil {
			list[i] = u
		}
	}
	return list, nil
}

// Wait blocks until the export is final on this replica, d elapses or ctx
// ends, then returns its current state.
func (e *Engine) Wait(ctx context.Context, id string, d time.Duration) (*Export, error) {
	if j := e.local(id); j != nil && d > 0 {
		t := time.NewTimer(d)
		select {
		case <-j.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	return e.Get(ctx, id)
}

// Cancel ends a pending or running export as cancelled: a compare-and-set
// on its record, so a cancel that returns nil is final (the owner, here or
// on another replica, is fenced out and can no longer publish). The job's
// query is then stopped and its temp file removed: at once here, at its
// next heartbeat elsewhere. A final export yields ErrNotCancellable along
// with its state.
func (e *Engine) Cancel(ctx context.Context, id string) (*Export, error) {
	x, err := e.cfg.Records.Cancel(ctx, id)
	if err != nil {
		return x, err
	}
	if j := e.local(id); j != nil {
		j.cancel(errCancelled)
		select {
		case <-j.done:
		case <-ctx.Done():
		}
	}
	return x, nil
}
