package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// errAborted tells the body writer that the exchange is over.
var errAborted = errors.New("exchange aborted")

// exchange is one request/response on one connection. The caller's
// goroutine runs Do and then the response body; the writer goroutine copies
// the request body. mu guards the state they share.
type exchange struct {
	c    *Client
	pc   *conn
	ctx  context.Context
	stop func() bool // unregisters the ctx.Done hook that closes pc

	writerDone chan struct{} // closed when the writer goroutine exits

	mu       sync.Mutex
	running  bool  // the writer goroutine has not exited yet; see writerDone
	reading  bool  // the writer is inside body.Read
	aborted  bool  // the writer must not read the body again
	written  bool  // the body was written completely
	handoff  bool  // the response is complete; the writer decides pool or close
	bodyErr  error // the caller's body failed; wrapped into what we return
	writeErr error // writing to the connection failed

	closeAfter bool // the response ends the connection (Connection: close, say)
	upgrade    bool // the request asks to switch protocols: a 101 is final
	released   bool // the connection was pooled or closed (caller's goroutine only)
}

// handoffTimeout bounds the last body write when the response has already
// completed, so a writer the upstream stopped reading cannot hold its conn.
const handoffTimeout = 5 * time.Second

// writerWait is how long release waits for a writer finishing its last Write.
const writerWait = 50 * time.Millisecond

// readBody reads from the caller's body unless the exchange was aborted.
func (x *exchange) readBody(body io.Reader, p []byte) (int, error) {
	x.mu.Lock()
	if x.aborted {
		x.mu.Unlock()
		return 0, errAborted
	}
	x.reading = true
	x.mu.Unlock()
	n, err := body.Read(p)
	x.mu.Lock()
	x.reading = false
	x.mu.Unlock()
	return n, err
}

func (x *exchange) bodyDone() {
	x.mu.Lock()
	x.written = true
	x.mu.Unlock()
}

// bodyFailed aborts: the upstream must never see a complete request.
func (x *exchange) bodyFailed(err error) {
	x.mu.Lock()
	x.bodyErr = err
	x.mu.Unlock()
	x.pc.close()
}

// writeFailed leaves the connection open: the upstream may have answered
// early (413, 401) and the answer is still worth reading.
func (x *exchange) writeFailed(err error) {
	x.mu.Lock()
	x.writeErr = err
	x.mu.Unlock()
}

// release ends the exchange: the connection goes back to the pool only after
// a complete response (clean), a completely written body, no close request
// and no cancellation; otherwise it is closed.
//
// A fast upstream often answers before the writer goroutine, past its last
// Write, has recorded that the body is complete. Like net/http, release then
// waits a little for the writer; unlike net/http it does not give up on the
// connection after that but hands the decision to the writer (writerExit).
// A writer still reading the caller's body means the upstream answered
// early: the connection is closed.
func (x *exchange) release(clean bool) {
	if x.released {
		return
	}
	x.released = true
	hookStopped := x.stop()
	// Bytes after the response's framed end are nobody's answer: the
	// connection cannot carry another request (issue 15).
	clean = clean && hookStopped && !x.closeAfter && x.pc.br.Buffered() == 0
	x.mu.Lock()
	x.aborted = true
	if clean && x.running && !x.reading {
		x.mu.Unlock()
		t := time.NewTimer(writerWait)
		select {
		case <-x.writerDone:
		case <-t.C:
		}
		t.Stop()
		x.mu.Lock()
	}
	ok := x.written && x.writeErr == nil
	x.handoff = clean && !ok && x.running && !x.reading && x.bodyErr == nil && x.writeErr == nil
	handoff := x.handoff
	x.mu.Unlock()
	switch {
	case handoff:
		if x.pc.nc.SetWriteDeadline(time.Now().Add(handoffTimeout)) != nil {
			x.pc.close()
		}
	case clean && ok:
		x.c.putIdle(x.pc)
	default:
		x.pc.close()
	}
}

// writerExit runs last on the writer goroutine and completes a handoff.
func (x *exchange) writerExit() {
	x.mu.Lock()
	x.running = false
	handoff, ok := x.handoff, x.written && x.writeErr == nil
	x.mu.Unlock()
	close(x.writerDone)
	if !handoff {
		return
	}
	if ok && x.pc.nc.SetWriteDeadline(time.Time{}) == nil {
		x.c.putIdle(x.pc)
	} else {
		x.pc.close()
	}
}

// failure turns a read error into what the caller sees, preferring the cause:
// the caller's body, then cancellation.
func (x *exchange) failure(what string, err error) error {
	x.mu.Lock()
	bodyErr, writeErr := x.bodyErr, x.writeErr
	x.mu.Unlock()
	switch {
	case bodyErr != nil:
		return fmt.Errorf("reading request body: %w", bodyErr)
	case x.ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, context.Cause(x.ctx))
	case writeErr != nil:
		return fmt.Errorf("%s: %w (after writing request body failed: %w)", what, err, writeErr)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// roundTrip runs one exchange on pc: head is the request head with the Auth
// line as its own slice (see conn.writeHead), then body, if any, is streamed
// by a writer goroutine. retry reports that writing the head failed before
// any byte of it left, so the request cannot have reached the upstream and
// may be sent on another connection. Once a byte was written, a failure is
// an error, never a second send (issue 15: a POST is a model run, billed).
func (c *Client) roundTrip(ctx context.Context, pc *conn, head [][]byte, body io.Reader, contentLength int64) (resp *Response, retry bool, err error) {
	x := &exchange{c: c, pc: pc, ctx: ctx}
	x.stop = context.AfterFunc(ctx, pc.close)
	if unsent, err := pc.writeHead(head); err != nil {
		x.release(false)
		return nil, unsent && ctx.Err() == nil, x.failure("writing request head", err)
	}
	if contentLength == 0 {
		x.written = true
	} else {
		x.running = true
		x.writerDone = make(chan struct{})
		go x.writeBody(body, contentLength)
	}
	resp, closeAfter, err := x.readResponse()
	if err != nil {
		x.release(false) // also stops the writer from reading the body again
		return nil, false, err
	}
	x.closeAfter = closeAfter
	resp.Body = &respBody{x: x, rc: resp.Body, left: resp.ContentLength}
	return resp, false, nil
}

// readResponse reads the final response header, skipping 1xx.
func (x *exchange) readResponse() (resp *Response, closeAfter bool, err error) {
	nc, br := x.pc.nc, x.pc.br
	if x.c.hdrTimeout > 0 {
		if err := nc.SetReadDeadline(time.Now().Add(x.c.hdrTimeout)); err != nil {
			return nil, false, x.failure("reading response header", err)
		}
	}
	for i := 0; ; i++ {
		if _, err := br.Peek(1); err != nil {
			return nil, false, x.failure("reading response header", timeoutError(err, x.c.hdrTimeout))
		}
		resp, closeAfter, err = parseResponse(br, &x.pc.head)
		if err != nil {
			return nil, false, x.failure("reading response header", timeoutError(err, x.c.hdrTimeout))
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols && x.upgrade {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// Do never asks to switch protocols, and no caller of it can
			// be handed a connection that speaks something else.
			return nil, false, x.failure("reading response header", errors.New("upstream switched protocols (status 101)"))
		}
		if i == max1xx {
			return nil, false, x.failure("reading response header", errors.New("too many 1xx responses"))
		}
	}
	if x.c.hdrTimeout > 0 {
		if err := nc.SetReadDeadline(time.Time{}); err != nil {
			return nil, false, x.failure("reading response header", err)
		}
	}
	return resp, closeAfter, nil
}

func timeoutError(err error, d time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no response header within %v: %w", d, err)
	}
	return err
}

// respBody streams the response and ends the exchange at EOF, error or
// Close. Close before EOF closes the connection instead of draining it.
type respBody struct {
	x      *exchange
	rc     io.ReadCloser
	left   int64 // body bytes still to come when the length is known, else -1
	eof    bool
	closed bool
}

var errBodyClosed = errors.New("read on closed upstream response body")

func (b *respBody) Read(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, errBodyClosed
	case b.eof:
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	switch {
	case err == io.EOF:
		b.eof = true
		b.x.release(true)
	case err != nil:
		err = b.x.failure("reading response body", err)
		b.x.release(false)
	}
	return n, err
}

// Wait blocks until the next Read has something to return: body bytes, the
// end of the body or an error. It consumes nothing and needs no buffer of the
// caller's, only the connection's read buffer, so a caller relaying many idle
// streams takes a copy buffer only once data is there (issue 5: 1,000 slow
// streams must fit in 64 MiB). Cancelling the exchange's context ends a Wait
// as it ends a Read.
func (b *respBody) Wait() {
	if b.closed || b.eof || b.left == 0 || b.rc == http.NoBody {
		return
	}
	// An error is left for Read to report, wrapped like any other (see
	// stickyReader).
	_, _ = b.x.pc.br.Peek(1)
}

// Close ends the exchange. Before EOF it closes the connection rather than
// draining it, except for a response that has no body at all.
func (b *respBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.x.release(b.eof || b.rc == http.NoBody)
	return nil
}
