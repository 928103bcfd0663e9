// Package admission decides how many exports run at once and what happens to the creates that
// find every slot busy: an adaptive concurrency limit, capped by EXPORTD_MAX_EXPORTS (SPEC §4),
// in front of a bounded FIFO queue with a deadline.
//
// # Admission
//
// [Limiter.Acquire] admits a create when fewer exports run than the limit and nobody waits;
// otherwise the create waits in a FIFO queue of at most Config.QueueSize entries for at most
// Config.QueueTimeout. A released slot is handed directly to the oldest waiter (one wake-up per
// slot, no thundering herd). When the queue is full the create is shed at once, without
// blocking; when the deadline passes it is shed too.
//
// The queue takes only creates it expects to serve soon; the others are shed at once (reason
// predicted_wait), without holding their connection. The prediction models completions as a
// Poisson process at the drain rate r: a create with q creates ahead needs q+1 completions and
// waits Gamma(q+1, r), mean (q+1)/r and standard deviation sqrt(q+1)/r. A create is queued only
// if both hold:
//
//   - the mean wait is at most the mean time recent exports held their slots. A queued create's
//     completion time then at most about doubles, and the queue still holds the next export for
//     each slot that frees up, so slots do not idle between hand-offs. At saturation this works
//     out at about one waiter per running export; a fixed queue length would either idle slots
//     for long exports or make short ones wait many times their own duration.
//   - the mean plus two standard deviations fits within QueueTimeout. A create shed at its
//     deadline has held its connection for the whole QueueTimeout; with this margin only a few
//     percent of the queued creates time out, and at overload well under 1% of the sheds are slow.
//
// Before the first completion nothing is predicted and the deadline alone decides.
//
// Shed creates get an *[OverloadedError] (503 temporarily_unavailable, reason overloaded) whose
// RetryAfter is the time the queue ahead of a new create needs to drain: (queued+1) / drain rate,
// where the drain rate is completions per second of busy time, exponentially decayed over about
// 30s, within 100ms-60s. Before the first completion the estimate assumes every running export
// takes at least the busy time so far (at least 1s). Memory is bounded by the queue: a waiter is
// a few hundred bytes.
//
// When the limit shrinks below the number of running exports nothing is preempted; new exports
// wait until enough have finished.
//
// # Controller
//
// The limit follows a latency-gradient controller in the family of TCP Vegas and Netflix's
// gradient limiter, adapted to jobs whose sizes differ by six orders of magnitude:
//
//   - Each finished export yields its latency per row (rows floored at 1000, below which time is
//     overhead). Exports are grouped in half-octave classes of row count, and each class keeps a
//     reference: the lowest per-row latency seen over the last one to two rotation periods (a
//     windowed minimum, so the reference can rise again when the data gets slower for good).
//     Normalising per row and per class makes a 10-row export comparable with a 10-million-row
//     one; without classes, fixed overhead would make small exports look slow.
//   - Decisions are made once per window: max(8, limit) exports admitted under the current limit
//     (about one round trip of the limit, as in Vegas). Exports admitted before the last cut do
//     not count, so the slow tail admitted under a higher limit cannot cut twice. The window's
//     ratio is the mean of latency/reference over its exports.
//   - The ratio is compared with base, the ratio measured at low concurrency, which cancels the
//     workload's own spread (a minimum-based reference makes even an idle system's ratio exceed
//     1). inflation = ratio/base estimates how much queueing inside ClickHouse and the machine
//     slows exports. At most 1.2 with the limit in full use: the limit grows by one (additive
//     increase). Above 1.3: the limit is cut to limit/inflation + ¼, by at most half and at least
//     10% (Little's law: with latency inflated by that factor, limit/inflation exports is what
//     the system serves without queueing; the quarter slot of headroom keeps an estimate that
//     comes out a little low from rounding down below the capacity, without holding a server
//     that one export saturates at two). A failed export in the window (Outcome.Failed) cuts by
//     0.7. In between, the limit holds. The limit stays within [Min, Max] and is enforced
//     rounded to the nearest integer.
//   - base must be measured at low concurrency, and a saturated server never runs at low
//     concurrency on its own; so, like BBR's ProbeRTT, the controller probes: after the first 4
//     saturated windows, then every 32 windows and at least a minute, it halves the limit for
//     one window, takes that window's ratio as base, and restores the limit. A window at Min
//     also sets base. A probe costs about one window at half the limit, a few percent of
//     throughput at worst, and it is skipped while the limit is not fully used.
//
// Why not a throughput controller (hill-climbing on rows/s): completed rows per second depend
// on the offered load and on which exports happen to finish in a window, which varies far more
// than per-row latency. Why not plain AIMD on failures: ClickHouse slows down long before it
// fails. Why not a fixed limit: the right number of concurrent exports depends on the ClickHouse
// cluster and the data, and changes with both.
//
// The simulation test models a processor-sharing server that thrashes beyond its capacity, with
// job sizes spread log-uniformly over 10 to 2M rows and ±20% noise. At 10x offered load the
// limit settles at the capacity (oscillating within about one slot of it), goodput stays above
// 90% of the best fixed limit's, and admitted exports' p99 stays within 1.4x of their
// uncontended p99. When the capacity drops from 8 to 2 the limit follows within about 3
// simulated seconds (some 20 mean job durations); after the data gets three times slower for
// good, one window at Min re-measures the base and the limit is back at the capacity within
// about 12 seconds. On a server that one export saturates (ClickHouse sharing two cores with
// exportd), the limit stays mostly at 1 (mean about 1.4).
//
// The benchmark bench/overload (make bench-overload) offers 1x-10x of the measured capacity to
// the real service over loopback and reports goodput, completion, shed and read latencies and
// RSS against the targets.
//
// Known limits: a change in the job mix that makes every class slower at once looks like
// queueing until the next probe or rotation measures it; the controller then holds a lower
// limit for up to a few minutes (never below Min). The drain rate is a mean: exports of very
// different sizes make any single retry hint approximate.
package admission
