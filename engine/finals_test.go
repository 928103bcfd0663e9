package engine

import "testing"

func TestFinalCache(t *testing.T) {
	c := newFinalCache(2)
	c.put(&Export{ID: "a", Status: StatusRunning})
	if c.get("a") != nil {
		t.Fatal("cached a running export")
	}
	c.put(&Export{ID: "a", Status: StatusReady, Version: 2})
	c.put(&Export{ID: "a", Status: StatusFailed, Version: 1}) // older version loses
	if x := c.get("a"); x == nil || x.Status != StatusReady {
		t.Fatalf("a = %+v", x)
	}
	x := c.get("a")
	x.Status = "mutated"
	if c.get("a").Status != StatusReady {
		t.Fatal("get must return a copy")
	}
	c.put(&Export{ID: "b", Status: StatusCancelled})
	c.put(&Export{ID: "c", Status: StatusExpired}) // evicts a, the oldest
	if c.get("a") != nil || c.get("b") == nil || c.get("c") == nil {
		t.Fatal("eviction order")
	}
}
