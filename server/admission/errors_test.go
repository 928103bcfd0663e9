package admission

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestOverloadedErrorHeaders(t *testing.T) {
	for _, tc := range []struct {
		d        time.Duration
		ms, secs int64
	}{
		{0, 1, 1},
		{time.Microsecond, 1, 1},
		{time.Millisecond, 1, 1},
		{time.Millisecond + time.Nanosecond, 2, 1},
		{100 * time.Millisecond, 100, 1},
		{time.Second, 1000, 1},
		{1001 * time.Millisecond, 1001, 2},
		{60 * time.Second, 60000, 60},
	} {
		e := &OverloadedError{RetryAfter: tc.d}
		if ms, secs := e.RetryAfterMillis(), e.RetryAfterSeconds(); ms != tc.ms || secs != tc.secs {
			t.Errorf("RetryAfter %s: retry_after_ms %d, Retry-After %d; want %d, %d", tc.d, ms, secs, tc.ms, tc.secs)
		}
	}
}

func TestOverloadedErrorIs(t *testing.T) {
	err := fmt.Errorf("create export: %w", &OverloadedError{RetryAfter: time.Second, Reason: ReasonQueueFull})
	if !errors.Is(err, ErrOverloaded) {
		t.Errorf("errors.Is(%v, ErrOverloaded) = false", err)
	}
	var oe *OverloadedError
	if !errors.As(err, &oe) || oe.RetryAfter != time.Second {
		t.Errorf("errors.As(%v) = %v", err, oe)
	}
}
