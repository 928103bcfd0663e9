package procstat

import "testing"

// The harness's own CPU time is read and grows with work done.
func TestCPUSecondsOfSelf(t *testing.T) {
	before, err := CPUSeconds("self")
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for after := before; after < before+0.05; {
		for i := 0; i < 1_000_000; i++ {
			x += i
		}
		if after, err = CPUSeconds("self"); err != nil {
			t.Fatal(err)
		}
	}
	_ = x
	if _, err := CPUSeconds("0"); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
