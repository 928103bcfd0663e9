package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress prints a live line (rows, rows/s) to a terminal, or a line every
// 10s otherwise, until stopped. It never writes to stdout.
type progress struct {
	w      io.Writer
	label  string
	get    func() int64
	tty    bool
	start  time.Time
	stop   chan struct{}
	done   sync.WaitGroup
	closed bool
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func startProgress(w io.Writer, label string, get func() int64) *progress {
	p := &progress{w: w, label: label, get: get, tty: isTerminal(w), start: time.Now(), stop: make(chan struct{})}
	every := 10 * time.Second
	if p.tty {
		every = 250 * time.Millisecond
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.print(false)
			}
		}
	}()
	return p
}

func (p *progress) print(final bool) {
	n := p.get()
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(n) / el
	}
	line := fmt.Sprintf("%s: %d rows, %.1fs, %.0f rows/s", p.label, n, el, rate)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(p.w)
		}
	} else if !final {
		fmt.Fprintln(p.w, line)
	}
}

// Stop ends the live line.
func (p *progress) Stop() {
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	p.done.Wait()
	if p.tty {
		p.print(true)
	}
}
