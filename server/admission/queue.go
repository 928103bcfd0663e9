package admission

// waiter is one create waiting for a slot. permit is set, and then ready closed, under the
// limiter's lock when a slot is handed to it.
type waiter struct {
	ready      chan struct{}
	permit     *Permit
	onReady    func() // a Reservation's callback, called under the lock after ready closes
	prev, next *waiter
	queued     bool
}

// waitQueue is an intrusive FIFO list of waiters: O(1) push, pop and removal of a waiter that
// leaves from the middle, with no allocation beyond the waiter itself. It is not safe for
// concurrent use.
type waitQueue struct {
	head, tail *waiter
	len        int
}

func (q *waitQueue) pushBack(w *waiter) {
	w.prev, w.next, w.queued = q.tail, nil, true
	if q.tail == nil {
		q.head = w
	} else {
		q.tail.next = w
	}
	q.tail = w
	q.len++
}

func (q *waitQueue) popFront() *waiter {
	w := q.head
	q.remove(w)
	return w
}

// remove unlinks w; it does nothing if w is not queued.
func (q *waitQueue) remove(w *waiter) {
	if !w.queued {
		return
	}
	if w.prev == nil {
		q.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		q.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	q.len--
}
