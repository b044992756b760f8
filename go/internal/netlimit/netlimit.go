// Package netlimit caps the number of connections a server holds open at once.
//
// Without a cap, a local client that opens connections and leaves them idle
// makes the server spend a file descriptor and a goroutine on each until its
// timeouts fire, and can run the process out of descriptors. With Limit,
// connections beyond the cap are answered at once with a 503 and closed, so
// such a flood costs a bounded amount and a client over the limit learns it
// immediately instead of hanging in the listen backlog.
package netlimit

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// response503 is written to a connection over the limit. It is complete
// (Content-Length, Connection: close), so a client can stop reading after it.
const response503 = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 21\r\n" +
	"Connection: close\r\n" +
	"\r\n" +
	"too many connections\n"

const (
	// writeTimeout bounds writing the 503. A fresh socket's send buffer
	// takes it whole without waiting for the peer, so this only guards
	// against the unexpected.
	writeTimeout = 100 * time.Millisecond
	// lingerTimeout and lingerBytes bound how long, and how much, a rejected
	// connection is read before it is closed. Closing a socket with unread
	// input sends a reset, which can make the client drop the 503 it has not
	// read yet; reading the input first lets the 503 arrive, then EOF.
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 64 << 10
	// maxLingering caps the rejected connections read at once; beyond it
	// they are closed at once, so a flood costs at most this many extra
	// descriptors and goroutines, for at most lingerTimeout each.
	maxLingering = 64
)

// Limit returns a listener that holds at most max connections open at once.
// A connection accepted beyond that gets an immediate "503 Service
// Unavailable" and is closed, without delaying Accept for the connections
// after it. Closing an accepted connection frees its slot. With max <= 0,
// Limit returns l unchanged.
func Limit(l net.Listener, max int) net.Listener {
	if max <= 0 {
		return l
	}
	return &listener{Listener: l, slots: make(chan struct{}, max), lingering: make(chan struct{}, maxLingering)}
}

type listener struct {
	net.Listener
	slots     chan struct{} // one token per open connection
	lingering chan struct{} // one token per rejected connection being read
}

// Accept returns the next connection that fits under the limit, rejecting
// those that do not; it returns the underlying listener's errors unchanged.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &conn{Conn: c, slots: l.slots}, nil
		default:
			l.reject(c)
		}
	}
}

// reject answers c with a 503 and closes it. The write cannot block on the
// peer (see writeTimeout); reading what the client sent, before the close,
// happens in a goroutine of its own, when one of maxLingering is free.
func (l *listener) reject(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := io.WriteString(c, response503); err != nil {
		c.Close()
		return
	}
	select {
	case l.lingering <- struct{}{}:
		go func() {
			defer func() { <-l.lingering }()
			Linger(c)
		}()
	default:
		c.Close()
	}
}

// Linger closes c gracefully after a response that leaves input unread
// (a rejected or unread request): it shuts down the writing side, so the
// client sees the response and then EOF, reads and drops what the client
// still sends, for at most lingerTimeout and lingerBytes, and closes c.
// Closing at once with unread input would send a reset, which can make
// the client drop the response it has not read yet.
func Linger(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c, lingerBytes)
	c.Close()
}

type closeWriter interface{ CloseWrite() error }

// conn frees its slot on the first Close, however many times Close is called:
// a second release would take another connection's slot and let one more in
// than the limit.
type conn struct {
	net.Conn
	slots   chan struct{}
	release sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release.Do(func() { <-c.slots })
	return err
}

// CloseWrite shuts down the writing side, as *net.TCPConn does, for Linger.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn passes through to *net.TCPConn, so a switched protocol's relay
// can use rawio.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// SetLinger passes through to *net.TCPConn, so a server can end an aborted
// response with a reset.
func (c *conn) SetLinger(sec int) error {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return l.SetLinger(sec)
	}
	return errors.ErrUnsupported
}
