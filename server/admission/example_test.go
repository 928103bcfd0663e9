package admission_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/exportd/exportd/server/admission"
)

// Example shows the create-export path: acquire a slot before starting the job, map a shed to
// 503 overloaded, and release the slot with the job's outcome when it ends.
func Example() {
	lim, err := admission.New(admission.Config{Max: 1, QueueSize: -1}) // EXPORTD_MAX_EXPORTS=1, no queue
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	running, err := lim.Acquire(ctx) // the first export gets the only slot
	if err != nil {
		fmt.Println(err)
		return
	}

	_, err = lim.Acquire(ctx) // a second create is shed at once
	var overloaded *admission.OverloadedError
	if errors.As(err, &overloaded) {
		// 503 temporarily_unavailable, details.reason "overloaded".
		fmt.Printf("503 reason=overloaded retry_after_ms=%d Retry-After: %d (%s)\n",
			overloaded.RetryAfterMillis(), overloaded.RetryAfterSeconds(), overloaded.Reason)
	}

	// When the job ends, its outcome teaches the controller. A cancelled job would set Dropped.
	running.Release(admission.Outcome{Rows: 120_000, Bytes: 24 << 20, Duration: 800 * time.Millisecond})
	fmt.Println("limit", lim.Limit(), "in flight", lim.InFlight())
	// Output:
	// 503 reason=overloaded retry_after_ms=1000 Retry-After: 1 (queue_full)
	// limit 1 in flight 0
}
