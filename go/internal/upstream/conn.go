package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/rawio"
)

// conn is one connection to the upstream (possibly tunnelled).
type conn struct {
	nc   net.Conn // what requests are written to: *net.TCPConn or *tls.Conn
	raw  net.Conn // the TCP connection underneath; closing it aborts everything
	br   *bufio.Reader
	head httpsyntax.Head // the scratch space of response heads
	iov  [4][]byte       // backing array for the plain-TCP writev

	closeOnce sync.Once

	idleSince time.Time // guarded by Client.mu
}

// close is idempotent and safe from any goroutine. It closes the TCP
// connection rather than the tls.Conn: no close_notify that could block on a
// writer holding the TLS lock, so cancellation is immediate.
func (pc *conn) close() {
	pc.closeOnce.Do(func() { _ = pc.raw.Close() })
}

// writeHead writes the request head, with the Auth line as one of its
// slices, never copying auth into a buffer of ours (see the package comment).
// unsent reports that the write failed before any byte can have left, so the
// request cannot have reached the upstream (issue 15: a POST is never sent
// twice). Over TLS a failed write counts as sent: a record may have left in
// part.
func (pc *conn) writeHead(head [][]byte) (unsent bool, err error) {
	if tc, ok := pc.nc.(*tls.Conn); ok {
		for _, p := range head {
			if len(p) == 0 {
				continue
			}
			if _, err := tc.Write(p); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	// Plain TCP: nc is raw, or raw through rawio, which has no writev.
	bufs := net.Buffers(append(pc.iov[:0], head...))
	n, err := bufs.WriteTo(pc.raw)
	return err != nil && n == 0, err
}

// getConn returns a live pooled connection (reused) or dials a new one;
// fresh skips the pool. Every pooled connection is checked (issue 15: a
// stray response read as the next one's answer), with no shortcut for a
// recently used one.
func (c *Client) getConn(ctx context.Context, fresh bool) (pc *conn, reused bool, err error) {
	for !fresh {
		pc := c.popIdle()
		if pc == nil {
			break
		}
		if pc.quiet() && pc.alive() {
			return pc, true, nil
		}
		pc.close()
	}
	pc, err = c.dial(ctx, false)
	return pc, false, err
}

// aLongTimeAgo is a read deadline that has passed: a read returns at once
// with what is already buffered, or a timeout.
var aLongTimeAgo = time.Unix(1, 0)

// quiet reports that nothing the upstream sent since its last response is
// buffered in the process: not in br, and not inside tls.Conn, which holds
// the rest of a decrypted record and whole records read with the last one,
// where the kernel-level check in alive cannot see them. A read with a
// passed deadline surfaces those bytes without waiting; crypto/tls does not
// keep a timeout as the connection's error (it is a net.Error whose
// Temporary is true), nor does stickyReader.
func (pc *conn) quiet() bool {
	if pc.br.Buffered() != 0 {
		return false
	}
	if _, ok := pc.nc.(*tls.Conn); !ok {
		return true
	}
	if pc.nc.SetReadDeadline(aLongTimeAgo) != nil {
		return false
	}
	_, err := pc.br.Peek(1)
	return errors.Is(err, os.ErrDeadlineExceeded) && pc.br.Buffered() == 0 && pc.nc.SetReadDeadline(time.Time{}) == nil
}

// popIdle takes the most recently used pooled connection.
func (c *Client) popIdle() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := len(c.idle); n > 0; n = len(c.idle) {
		pc := c.idle[n-1]
		c.removeIdleLocked(n - 1)
		if time.Since(pc.idleSince) < c.idleTime {
			return pc
		}
		pc.close()
	}
	return nil
}

func (c *Client) removeIdleLocked(i int) {
	copy(c.idle[i:], c.idle[i+1:])
	c.idle[len(c.idle)-1] = nil
	c.idle = c.idle[:len(c.idle)-1]
}

// putIdle pools pc, evicting the oldest connection when the pool is full.
func (c *Client) putIdle(pc *conn) {
	c.mu.Lock()
	var evict *conn
	if len(c.idle) >= c.maxIdle {
		evict = c.idle[0]
		c.removeIdleLocked(0)
	}
	pc.idleSince = time.Now()
	c.idle = append(c.idle, pc)
	// One timer for the whole pool, armed only when it has none: resetting
	// a timer per request would wake the network poller on every response
	// (an eventfd write and a thread switch on the request path, issue 5).
	if !c.sweeping {
		c.sweeping = true
		if c.sweeper == nil {
			c.sweeper = time.AfterFunc(c.idleTime, c.sweep)
		} else {
			c.sweeper.Reset(c.idleTime)
		}
	}
	c.mu.Unlock()
	if evict != nil {
		evict.close()
	}
}

// sweep closes the connections idle for IdleConnTimeout and rearms itself
// for the oldest one left. c.idle is ordered by idleSince, oldest first.
func (c *Client) sweep() {
	c.mu.Lock()
	now := time.Now()
	n := 0
	for n < len(c.idle) && now.Sub(c.idle[n].idleSince) >= c.idleTime {
		n++
	}
	expired := slices.Clone(c.idle[:n])
	for range n {
		c.removeIdleLocked(0)
	}
	if len(c.idle) > 0 {
		c.sweeper.Reset(c.idle[0].idleSince.Add(c.idleTime).Sub(now))
	} else {
		c.sweeping = false
	}
	c.mu.Unlock()
	for _, pc := range expired {
		pc.close()
	}
}

// dial opens a connection to the upstream: TCP, through a CONNECT tunnel if
// a proxy applies (https upstreams only), then TLS for https. With rawIO,
// everything above the TCP connection reads and writes it through
// rawio.Wrap (for a relay that goes idle between messages, issue 11).
func (c *Client) dial(ctx context.Context, rawIO bool) (*conn, error) {
	var proxyURL *url.URL
	if c.proxy != nil {
		var err error
		if proxyURL, err = c.proxy(c.url); err != nil {
			return nil, fmt.Errorf("choosing proxy: %w", err)
		}
	}
	addr := c.addr
	if proxyURL != nil {
		var err error
		if addr, err = proxyAddr(proxyURL); err != nil {
			return nil, err
		}
	}
	raw, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing upstream: %w", err)
	}
	nc := raw
	if rawIO {
		nc = rawio.Wrap(raw)
	}
	if proxyURL != nil {
		if nc, err = c.tunnel(ctx, nc, proxyURL); err != nil {
			_ = raw.Close()
			return nil, err
		}
	}
	if c.tls != nil {
		tc := tls.Client(nc, c.tls)
		if err := withDeadline(ctx, raw, c.tlsTimeout, tc.Handshake); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("tls handshake with upstream: %w", err)
		}
		nc = tc
	}
	return &conn{nc: nc, raw: raw, br: bufio.NewReaderSize(&stickyReader{r: nc}, 4096)}, nil
}

// stickyReader makes the connection's first read error final. bufio.Reader
// hands an error out only once, and the Peek in respBody.Wait must not take
// one that the body's next Read has to report: a reset would look like the
// clean end of a body delimited by the connection's close. A timeout stays
// passing: deadlines are ours (the response-header timeout, and the
// liveness check where the platform has no non-blocking peek), and a
// connection whose check timed out is still good.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		s.err = err
	}
	return n, err
}

// withDeadline runs fn with raw's deadline set to timeout and raw closed if
// ctx ends first, and reports ctx's cause in that case.
func withDeadline(ctx context.Context, raw net.Conn, timeout time.Duration, fn func() error) error {
	if err := raw.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	err := fn()
	if !stop() {
		return context.Cause(ctx)
	}
	if err != nil {
		return err
	}
	return raw.SetDeadline(time.Time{})
}

func proxyAddr(u *url.URL) (string, error) {
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
	default:
		return "", fmt.Errorf("proxy scheme %q is not supported (use http or https)", trim(u.Scheme))
	}
	if u.Hostname() == "" {
		return "", errors.New("proxy URL has no host")
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// tunnel opens a CONNECT tunnel to the upstream through the proxy on raw
// (over TLS for an https proxy) and returns the connection to speak TLS on.
func (c *Client) tunnel(ctx context.Context, raw net.Conn, proxyURL *url.URL) (net.Conn, error) {
	nc := raw
	if proxyURL.Scheme == "https" {
		tc := tls.Client(raw, &tls.Config{
			ServerName: proxyURL.Hostname(),
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
			RootCAs:    c.tls.RootCAs,
		})
		if err := withDeadline(ctx, raw, c.tlsTimeout, tc.Handshake); err != nil {
			return nil, fmt.Errorf("tls handshake with proxy: %w", err)
		}
		nc = tc
	}
	// The CONNECT exchange carries no key: only the upstream's address and
	// the proxy's own credentials.
	req := "CONNECT " + c.addr + " HTTP/1.1\r\nHost: " + c.addr + "\r\n"
	if u := proxyURL.User; u != nil {
		pass, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)) + "\r\n"
	}
	req += "\r\n"
	err := withDeadline(ctx, raw, c.dialer.Timeout, func() error {
		if _, err := nc.Write([]byte(req)); err != nil {
			return fmt.Errorf("writing CONNECT to proxy: %w", err)
		}
		br := bufio.NewReaderSize(nc, 1024)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return fmt.Errorf("reading CONNECT response from proxy: %w", err)
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("proxy refused CONNECT: %s", trim(resp.Status))
		}
		if br.Buffered() > 0 {
			return errors.New("proxy sent data before the tunnel was used")
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		// withDeadline reports only the cancellation: name the step.
		return nil, fmt.Errorf("CONNECT exchange with proxy: %w", err)
	}
	if err != nil {
		return nil, err
	}
	return nc, nil
}
