package main

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an io.Writer that can be made to block, like a stderr pipe
// nobody drains.
type recorder struct {
	mu      sync.Mutex
	buf     strings.Builder
	blocked chan struct{} // while open, Write waits
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.blocked != nil {
		<-r.blocked
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func TestLineLogOrderAndDelay(t *testing.T) {
	out := &recorder{}
	l := newLineLog(out)
	l.batchf("access %d", 1)
	if got := out.String(); got != "" {
		t.Errorf("batched line written at once: got %q, want it held", got)
	}
	deadline := time.Now().Add(5 * batchDelay)
	for out.String() == "" && time.Now().Before(deadline) {
		time.Sleep(batchDelay / 10)
	}
	l.batchf("access %d", 2)
	l.logf("shutting %s", "down")
	want := progName + ": access 1\n" + progName + ": access 2\n" + progName + ": shutting down\n"
	if got := out.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLineLogNeverBlocksRequests(t *testing.T) {
	out := &recorder{blocked: make(chan struct{})}
	l := newLineLog(out)
	done := make(chan struct{})
	go func() {
		defer close(done)
		line := strings.Repeat("x", 1000)
		for range 5000 { // 5 MB of lines into a stderr that does not drain
			l.batchf("%s", line)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("batchf blocked on a stderr that is not drained")
	}
	l.mu.Lock()
	pending, dropped := len(l.pending), l.dropped
	l.mu.Unlock()
	if pending > maxPending+2000 || dropped == 0 {
		t.Errorf("got %d bytes pending and %d dropped, want at most about %d pending and some dropped", pending, dropped, maxPending)
	}
	close(out.blocked)
	l.flush()
	if !strings.Contains(out.String(), "log lines dropped") {
		t.Errorf("the drop count was not reported")
	}
}
