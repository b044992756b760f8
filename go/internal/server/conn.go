package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/netlimit"
)

// ErrClientGone is the cause of a request context cancelled because the
// client closed its connection.
var ErrClientGone = errors.New("client closed the connection")

type conn struct {
	s      *Server
	rwc    net.Conn
	addr   string // remote address, for logs and Request.RemoteAddr
	br     *bufio.Reader
	head   httpsyntax.Head // the scratch space of request heads and trailers
	ctx    context.Context
	cancel context.CancelCauseFunc
	active bool // guarded by s.mu
	// switched is set, under s.mu, once SwitchProtocols has handed the
	// connection to its handler: no timeout of ours applies from then on.
	switched bool
	// deadline is when the sweeper closes the connection (Unix
	// nanoseconds), 0 for never; see Server.sweep.
	deadline atomic.Int64

	// The watcher (see watchFrom), guarded by wmu.
	wmu      sync.Mutex
	wreq     bool // a handler is running
	wbody    bool // its request body has been read to its end
	wdue     bool // a sweep tick has passed since the request began
	wrunning bool
	wdone    chan struct{} // closed when the watcher goroutine exits
	// onBodyDone is bodyDone as a func value, made once per connection.
	onBodyDone func()
}

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{s: s, rwc: rwc, br: bufio.NewReaderSize(rwc, 4096)}
	c.onBodyDone = c.bodyDone
	// Made here, not in serve, so that Server.Close can cancel it at once.
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	return c
}

func (c *conn) serve() {
	defer c.s.forget(c)
	defer c.rwc.Close()
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.s.logf("panic serving %s: %v\n%s", c.addr, v, debug.Stack())
		}
	}()
	c.addr = c.rwc.RemoteAddr().String()
	defer c.cancel(nil)
	if c.s.Admit != nil && !c.s.Admit(c.rwc) {
		c.reject(&requestError{http.StatusForbidden, "client not allowed"})
		return
	}

	wait, first := c.s.ReadHeaderTimeout, true // the first request: from the accept
	for {
		if !c.s.setActive(c, false) {
			return
		}
		c.expireIn(wait)
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.s.setActive(c, true) {
			return
		}
		if !first {
			c.expireIn(c.s.ReadHeaderTimeout)
		}
		req, err := c.readRequest()
		if err != nil {
			c.reject(err)
			return
		}
		c.deadline.Store(0)
		if !c.handle(req) {
			return
		}
		wait, first = c.s.IdleTimeout, false
	}
}

// expireIn has the sweeper close the connection after d, or never if d is
// zero. Not SetReadDeadline: its three runtime timer updates per request
// cost about a tenth of the proxy's CPU per request in the benchmark
// (issue 5).
func (c *conn) expireIn(d time.Duration) {
	if d <= 0 {
		c.deadline.Store(0)
		return
	}
	c.deadline.Store(time.Now().Add(d).UnixNano())
}

// reject answers a request that could not be read, unless the client just
// went away or stalled, and closes the connection.
func (c *conn) reject(err error) {
	var re *requestError
	if !errors.As(err, &re) {
		return // EOF, reset or the header timeout: nobody to answer
	}
	c.s.logf("rejected a request from %s: %d %s", c.addr, re.status, re.reason)
	c.deadline.Store(0) // Linger has a deadline of its own
	c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	text := fmt.Sprintf("%d %s: %s\n", re.status, http.StatusText(re.status), re.reason)
	fmt.Fprintf(c.rwc, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		re.status, http.StatusText(re.status), len(text), text)
	netlimit.Linger(c.rwc)
}

// handle runs the handler for req and finishes its response; it reports
// whether the connection may carry another request.
func (c *conn) handle(req *request) (keep bool) {
	w := newResponse(c, req)
	c.watchFrom(req.body)
	finished := false
	defer func() {
		if !finished { // the handler panicked
			c.unwatch()
			w.abort()
			c.resetOnClose()
		}
	}()
	c.s.Handler.Serve(w, req.r)
	finished = true
	c.unwatch()
	if w.switched {
		return false // the connection spoke another protocol: close it
	}
	if !w.finish() {
		return false // the response is broken: close at once
	}
	if !req.body.done() || w.closeAfter {
		// Unread input (the rest of the body, or what the client sent
		// after it) cannot be taken for the next request, and closing with
		// it unread would reset the connection, which can make the client
		// drop the response it has not read yet (RFC 9112, 9.6).
		netlimit.Linger(c.rwc)
		return false
	}
	return true
}

// watchFrom arms the watcher for a new request. From the first sweep tick
// after the request began (Server.sweep), and once its body has been read
// to its end, a goroutine waits for input on the connection. Input is kept
// for the next request (the client pipelines); an end or error means the
// client is gone, and the request context is cancelled so that the
// upstream request stops too. Requests shorter than a tick, nearly all,
// never pay for the goroutine, nor for a timer of their own.
func (c *conn) watchFrom(b *body) {
	c.wmu.Lock()
	c.wreq, c.wbody, c.wdue, c.wrunning = true, b.done(), false, false
	c.wmu.Unlock()
	b.onDone = c.onBodyDone
}

// watchDue is called by the sweeper on each tick.
func (c *conn) watchDue() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wdue = true
	c.startWatchLocked()
}

func (c *conn) bodyDone() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbody = true
	c.startWatchLocked()
}

func (c *conn) startWatchLocked() {
	if !c.wreq || !c.wdue || !c.wbody || c.wrunning {
		return
	}
	c.wrunning = true
	c.wdone = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		_, err := c.br.Peek(1)
		if err != nil && !isTimeout(err) {
			c.cancel(ErrClientGone)
		}
	}(c.wdone)
}

// unwatch stops the watcher and waits for it, so that only this goroutine
// reads the connection from here on.
func (c *conn) unwatch() {
	c.wmu.Lock()
	running, done := c.wrunning, c.wdone
	c.wreq, c.wrunning = false, false
	c.wmu.Unlock()
	if running {
		c.rwc.SetReadDeadline(time.Unix(1, 0))
		<-done
		c.rwc.SetReadDeadline(time.Time{})
	}
}

// resetOnClose makes the close that follows an aborted response a TCP
// reset: for a response delimited by the close (HTTP/1.0 without
// Content-Length), a clean FIN would look like a complete one (issue 15).
// Best effort: a connection without SetLinger just closes.
func (c *conn) resetOnClose() {
	if l, ok := c.rwc.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
