package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Batching of the proxy's log lines.
const (
	batchDelay = 100 * time.Millisecond // the longest a line waits in memory
	batchSize  = 32 << 10               // written at once beyond this
	maxPending = 1 << 20                // lines beyond this are counted, not kept
)

// lineLog writes prefixed lines to stderr. The proxy's lines (one or more
// per request) are batched: no request waits for a write(2), a busy proxy
// writes many lines at once (issue 5), and a stderr pipe that nobody drains
// any more costs at most maxPending bytes instead of hanging requests. main's
// own lines are written at once, after whatever is pending, so the order
// holds. Write errors are ignored: SIGPIPE is (see harden), and there is
// nobody left to tell.
type lineLog struct {
	out     io.Writer
	writing sync.Mutex // held while writing to out, so batches stay in order

	mu      sync.Mutex // guards the fields below
	pending []byte
	spare   []byte // the last batch written, reused for the next one
	dropped int
	timer   *time.Timer
}

func newLineLog(out io.Writer) *lineLog {
	l := &lineLog{out: out}
	l.timer = time.AfterFunc(time.Hour, l.flush)
	l.timer.Stop()
	return l
}

// logf writes a line now.
func (l *lineLog) logf(format string, args ...any) {
	l.add(format, args)
	l.flush()
}

// batchf queues a line to be written within batchDelay.
func (l *lineLog) batchf(format string, args ...any) {
	if l.add(format, args) {
		go l.flush()
	}
}

// add queues a line and reports whether the batch just became full.
func (l *lineLog) add(format string, args []any) (full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	before := len(l.pending)
	if before >= maxPending {
		l.dropped++
		return false
	}
	if before == 0 {
		l.timer.Reset(batchDelay)
	}
	l.pending = append(l.pending, progName+": "...)
	l.pending = fmt.Appendf(l.pending, format, args...)
	l.pending = append(l.pending, '\n')
	return before < batchSize && len(l.pending) >= batchSize
}

// flush writes whatever is pending.
func (l *lineLog) flush() {
	l.writing.Lock()
	defer l.writing.Unlock()
	l.mu.Lock()
	b := l.pending
	l.pending, l.spare = l.spare[:0], nil
	if l.dropped > 0 {
		b = fmt.Appendf(b, "%s: %d log lines dropped: stderr was not being read\n", progName, l.dropped)
		l.dropped = 0
	}
	l.timer.Stop()
	l.mu.Unlock()
	if len(b) > 0 {
		_, _ = l.out.Write(b)
	}
	if cap(b) <= batchSize*2 {
		l.mu.Lock()
		l.spare = b
		l.mu.Unlock()
	}
}
