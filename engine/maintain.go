package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/exportd/exportd/engine/storage"
)

// batch bounds every background pass over records: memory and the length
// of each transaction stay flat whatever the history.
const batch = 1000

// background runs heartbeats (lease, progress, remote cancellation), final
// states left unsaved, lost-owner detection, expiry, record retention and
// the storage reconciler. Every pass costs O(live + due now), never
// O(history).
func (e *Engine) background(ctx context.Context) {
	tick := time.NewTicker(e.cfg.Heartbeat)
	defer tick.Stop()
	reconcileEvery := max(1, int(e.cfg.ReconcileEvery/e.cfg.Heartbeat))
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n++
		e.saveUnsaved(ctx)
		e.heartbeat(ctx)
		if n%2 == 0 {
			e.reap(ctx)
		}
		if n%6 == 0 {
			e.expire(ctx)
			e.deleteOld(ctx)
		}
		if n%reconcileEvery == 0 {
			e.reconcile(ctx)
		}
	}
}

// warn logs a background failure unless the engine is stopping.
func (e *Engine) warn(ctx context.Context, msg string, err error, fields ...zap.Field) {
	if ctx.Err() == nil {
		e.log.Warn(msg, append(fields, zap.Error(err))...)
	}
}

func (e *Engine) heartbeat(ctx context.Context) {
	e.mu.Lock()
	jobs := make([]*job, 0, len(e.jobs))
	for _, j := range e.jobs {
		jobs = append(jobs, j)
	}
	e.mu.Unlock()
	for _, j := range jobs {
		j.mu.Lock()
		x := j.exp
		j.mu.Unlock()
		if Terminal(x.Status) {
			continue
		}
		cur, err := e.cfg.Records.Heartbeat(ctx, x.ID, x.Owner, x.Version, j.cnt.Rows.Load(), j.cnt.Bytes.Load())
		switch {
		case errors.Is(err, ErrLost):
			if cur != nil && cur.Status == StatusCancelled {
				j.cancel(errCancelled)
			} else {
				j.cancel(errShutdown)
			}
		case err != nil:
			e.warn(ctx, "heartbeat", err, zap.String("export_id", x.ID))
			if errors.Is(err, ErrControlPlaneUnavailable) {
				return // one line per beat, not per job
			}
		}
	}
}

// saveUnsaved retries recording the final states kept by finish.
func (e *Engine) saveUnsaved(ctx context.Context) {
	e.mu.Lock()
	list := make([]*unsavedFinal, 0, len(e.unsaved))
	for _, u := range e.unsaved {
		list = append(list, u)
	}
	e.mu.Unlock()
	for _, u := range list {
		x := u.state
		_, err := e.cfg.Records.Finish(ctx, x.ID, x.Owner, u.epoch, u.final)
		switch {
		case errors.Is(err, ErrLost):
			// Reaped or cancelled while unsaved: the record's state stands.
			if u.final.Status == StatusReady {
				e.removeArtefact(ctx, &x)
			}
		case err != nil:
			e.warn(ctx, "record final state", err, zap.String("export_id", x.ID))
			return // still unreachable: try again at the next beat
		}
		e.mu.Lock()
		delete(e.unsaved, x.ID)
		e.mu.Unlock()
		e.log.Info("recorded final state", zap.String("export_id", x.ID), zap.String("status", x.Status), zap.Bool("lost", err != nil))
	}
}

// reap ends as failed/shutdown the live exports whose lease ran out (their
// owner died, hung or lost PostgreSQL) and removes their writers' leftovers.
func (e *Engine) reap(ctx context.Context) {
	for {
		lost, err := e.cfg.Records.ReapLost(ctx, e.cfg.StaleAfter, batch)
		if err != nil {
			e.warn(ctx, "lost-owner check", err)
			return
		}
		e.discardAll(ctx, lost)
		for _, x := range lost {
			e.log.Info("export state", zap.String("export_id", x.ID), zap.String("status", StatusFailed),
				zap.String("failure_reason", ReasonShutdown), zap.String("previous_owner", x.Owner))
		}
		if len(lost) < batch {
			return
		}
	}
}

// discarder is implemented by stores that can remove what a dead writer of
// an object left behind (temp files, multipart uploads) at once rather than
// after Sweep's age. It must never touch a committed object.
type discarder interface {
	Discard(ctx context.Context, name string) error
}

// discardAll removes the leftovers of lost exports' writers (SPEC §6: once
// an export has ended nothing of it remains unless it is ready). Should a
// writer still be alive, its fenced Finish loses and it removes its own
// artefact; the reconciler catches what crashes leave.
func (e *Engine) discardAll(ctx context.Context, lost []*Export) {
	for _, x := range lost {
		if d, ok := e.cfg.Store.(discarder); ok {
			if err := d.Discard(ctx, x.ObjectName()); err != nil {
				e.warn(ctx, "discard leftovers of a lost export", err, zap.String("export_id", x.ID))
			}
		}
		// A writer that committed and died before recording ready.
		if err := e.cfg.Store.Delete(ctx, x.ObjectName()); err != nil {
			e.warn(ctx, "delete artefact of a lost export", err, zap.String("export_id", x.ID))
		}
	}
}

// expire marks expired, in bounded batches, the ready exports past their
// retention and deletes their artefacts (what a failed delete leaves, the
// reconciler removes).
func (e *Engine) expire(ctx context.Context) {
	for {
		due, err := e.cfg.Records.ExpireDue(ctx, batch)
		if err != nil {
			e.warn(ctx, "expire exports", err)
			return
		}
		for _, x := range due {
			if err := e.cfg.Store.Delete(ctx, x.ObjectName()); err != nil {
				e.warn(ctx, "delete expired artefact", err, zap.String("export_id", x.ID))
			}
		}
		if len(due) > 0 {
			e.log.Info("expired exports", zap.Int("count", len(due)))
		}
		if len(due) < batch {
			return
		}
	}
}

// deleteOld removes ended records past the record retention, in batches.
func (e *Engine) deleteOld(ctx context.Context) {
	if e.cfg.RecordRetention < 0 {
		return
	}
	total := 0
	for {
		n, err := e.cfg.Records.DeleteOld(ctx, e.cfg.RecordRetention, batch)
		if err != nil {
			e.warn(ctx, "delete old records", err)
			return
		}
		total += n
		if n < batch {
			break
		}
	}
	if total > 0 {
		e.log.Info("deleted old export records", zap.Int("count", total))
	}
}

// objectLister is implemented by stores that can enumerate their committed
// objects (the reconciler's input).
type objectLister interface {
	// List calls fn with every committed object older than grace, in
	// pages; it stops at fn's first error.
	List(ctx context.Context, grace time.Duration, fn func(names []string) error) error
}

// reconcile removes every object older than ReconcileGrace that no live or
// ready export names: artefacts of exports that lost a race, were reaped,
// expired while their delete failed, or whose owner crashed between commit
// and record. Whatever crashes where, storage converges to the files of
// ready exports.
func (e *Engine) reconcile(ctx context.Context) {
	n, err := e.Reconcile(ctx)
	if err != nil {
		e.warn(ctx, "reconcile storage", err)
	}
	if n > 0 {
		e.log.Info("reconciled storage", zap.Int("removed", n))
	}
}

// Reconcile runs one reconciler pass (see reconcile) and returns the
// number of objects it removed.
func (e *Engine) Reconcile(ctx context.Context) (int, error) {
	l, ok := e.cfg.Store.(objectLister)
	if !ok {
		return 0, nil
	}
	removed := 0
	err := l.List(ctx, e.cfg.ReconcileGrace, func(names []string) error {
		ids := make([]string, 0, len(names))
		byID := make(map[string]string, len(names))
		for _, name := range names {
			if !storage.ExportObjectName(name) {
				continue // not an export's artefact: not ours to remove
			}
			id, _, _ := strings.Cut(name, ".")
			ids = append(ids, id)
			byID[id] = name
		}
		if len(ids) == 0 {
			return nil
		}
		live, err := e.cfg.Records.Live(ctx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if live[id] {
				continue
			}
			if err := e.cfg.Store.Delete(ctx, byID[id]); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	return removed, err
}
