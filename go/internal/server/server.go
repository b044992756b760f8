// Package server is the proxy's HTTP/1.1 server: it reads requests from
// client connections, hands them to a Handler and writes the answers.
//
// Why not net/http's Server: per request it starts a background read
// goroutine, allocates a context, parses the head into an http.Header map
// and clones headers into a response snapshot. For a proxy whose every
// request is a small, fast exchange with a local agent that was most of its
// cost: twice nginx's CPU time per request and 1.7 times its added latency
// (issue 5). Here one goroutine per connection reads a request, calls the
// handler and writes through one buffered writer, with no timer of its own:
// one sweeper per server keeps the timeouts, and starts watching for a
// client that leaves only once a request has outlived a tick (see
// conn.watchFrom). The handler sees the fields as received, in one
// allocation (httpsyntax.Head), and answers with fields of its own: no map
// is built on the way.
//
// Chunked bodies are decoded by net/http/httputil, and framing is stricter
// than net/http's wherever RFC 9112 allows a choice, because ambiguous
// framing is how requests are smuggled:
//
//   - HTTP/1.0 and HTTP/1.1 only (505 otherwise); a request line of exactly
//     three parts with single spaces.
//   - Exactly one Host field with a host[:port] value (400 otherwise).
//   - Transfer-Encoding: exactly "chunked" (501 otherwise), never together
//     with Content-Length and never in HTTP/1.0 (400); the connection is
//     closed after a chunked request.
//   - Content-Length: one field of digits (400 otherwise).
//   - Expect: only 100-continue (417 otherwise).
//   - A head over MaxHeaderBytes gets 431.
//
// Each rejected request is answered with a fixed status and closed. A
// connection is also closed after a response whose request body was not
// read to its end, after HTTP/1.0 requests, "Connection: close" from
// either side, and when a handler panics (http.ErrAbortHandler aborts a
// response silently, as in net/http).
package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxTick bounds the sweeper's period, and so how long after its start a
// request is watched for the client leaving.
const maxTick = 250 * time.Millisecond

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Server serves HTTP/1.1 on the connections of one listener.
type Server struct {
	Handler Handler
	// ReadHeaderTimeout bounds the first request's head from the accept, and
	// every later head from its first byte. Zero means no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept connection.
	// Zero means no limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head (request line and fields).
	MaxHeaderBytes int
	// BodyTimeout bounds each wait for request body bytes, so a client
	// that declares a body and sends nothing cannot hold its connection
	// slot for ever (issue 15); the connection is closed. Zero means no
	// limit.
	BodyTimeout time.Duration
	// Admit, if set, vets each new connection before anything is read from
	// it. A refused connection is answered "403 Forbidden" at once and
	// closed: it holds its place (see netlimit) for a linger at most, not
	// for as long as its client takes to send a request.
	Admit func(net.Conn) bool
	// Logf, if set, receives panics, accept errors and rejected requests.
	Logf func(format string, args ...any)

	mu        sync.Mutex
	ln        net.Listener
	conns     map[*conn]struct{}
	closing   bool          // Shutdown or Close was called
	drained   chan struct{} // closed when closing and the last conn is gone
	serveEnd  chan struct{} // closed when Serve returns
	connected chan struct{} // a connection was tracked; wakes the sweeper
}

// Serve accepts connections on ln until Shutdown or Close, and serves each
// in a goroutine of its own. It always returns a non-nil error:
// ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing || s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.conns = make(map[*conn]struct{})
	s.drained = make(chan struct{})
	s.serveEnd = make(chan struct{})
	s.connected = make(chan struct{}, 1)
	s.mu.Unlock()
	defer close(s.serveEnd)
	go s.sweep()

	var delay time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors and the like: back off as net/http does,
			// and keep serving the connections already open.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logf("accepting a connection: %v; retrying in %v", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newConn(s, rwc)
		if !s.track(c) {
			rwc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// sweep closes the connections whose deadline has passed (the header,
// idle and body timeouts) and starts watching those serving a request (see
// conn.watchFrom), every tenth of the shortest timeout and at least every
// maxTick, until Serve has returned and no connection but switched ones is
// left: the timeouts keep running while a graceful shutdown drains (issue
// 15). A timeout fires up to one tick late. A switched connection (a
// WebSocket, open for a whole Codex session) has nothing to sweep: while
// there are only those, it sleeps as it does with none.
func (s *Server) sweep() {
	tick := maxTick
	for _, d := range []time.Duration{s.ReadHeaderTimeout, s.IdleTimeout, s.BodyTimeout} {
		if d > 0 { // zero: no limit, nothing to sweep for
			tick = min(tick, d/10)
		}
	}
	tick = max(tick, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	serveEnd := s.serveEnd
	for {
		select {
		case <-serveEnd:
			serveEnd = nil // sweep on until the draining connections are gone
		case now := <-t.C:
			s.mu.Lock()
			idle := true
			for c := range s.conns {
				if d := c.deadline.Load(); d != 0 && now.UnixNano() > d {
					c.rwc.Close()
				} else if c.active {
					c.watchDue()
				}
				idle = idle && c.switched
			}
			s.mu.Unlock()
			if idle {
				if serveEnd == nil {
					return // Serve has returned: no connection can arrive
				}
				// Nothing to sweep: sleep until a connection arrives, so an
				// unused proxy, or one holding WebSockets open, does not
				// wake up four times a second.
				t.Stop()
				select {
				case <-s.serveEnd:
					return
				case <-s.connected:
				}
				t.Reset(tick)
			}
		}
	}
}

// logf calls Logf, if set. A nil Logf must not turn a rejected request
// into a panic, which would recur in the recovery that logs it.
func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// track registers a new connection, as idle; false once closing.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	select {
	case s.connected <- struct{}{}:
	default:
	}
	return true
}

// forget unregisters a closed connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.closing && len(s.conns) == 0 {
		closeOnce(s.drained)
	}
}

// setSwitched marks c as switched: the sweeper has nothing to do for it.
func (s *Server) setSwitched(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.switched = true
}

// setActive marks c as serving a request (active) or waiting for one;
// false once closing, when c must not start or wait for another request.
func (s *Server) setActive(c *conn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.active = active
	return !s.closing
}

// Shutdown stops accepting, closes idle connections and waits until every
// active one has finished its response and closed, or until ctx is done,
// when it returns ctx's error and leaves the rest to Close.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.beginClosing(false) {
		return nil
	}
	select {
	case <-s.drained:
		<-s.serveEnd
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting, closes every connection at once and cancels the
// contexts of their requests.
func (s *Server) Close() error {
	s.beginClosing(true)
	return nil
}

// beginClosing closes the listener and the idle connections (all of them
// if all); false if Serve never ran.
func (s *Server) beginClosing(all bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	if s.ln == nil {
		return false
	}
	s.ln.Close()
	for c := range s.conns {
		if all || !c.active {
			// Closed first, so that a handler released by the cancellation
			// cannot end its response cleanly; cancelled next, so that a
			// handler waiting on its request's context (for an upstream
			// answer, say) learns at once that its client is gone.
			c.rwc.Close()
			c.cancel(ErrServerClosed)
		}
	}
	if len(s.conns) == 0 {
		closeOnce(s.drained)
	}
	return true
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}
