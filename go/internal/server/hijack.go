package server

import (
	"errors"
	"io"
	"net/http"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/rawio"
)

// ErrNotSwitchable is returned by SwitchProtocols once the response has
// begun, or for a request that cannot be upgraded (HTTP/1.0, a body).
var ErrNotSwitchable = errors.New("server: response cannot switch protocols")

var errSwitched = errors.New("server: the connection has switched protocols")

// Switched is a client connection taken over by a handler after "101
// Switching Protocols" (RFC 9110, 15.2.2): its bytes are the handler's, in
// both directions, until the handler returns, when the server closes it.
//
// The connection stays the server's in every other way: it holds its place
// under a connection limit (netlimit), it is active for Shutdown, which
// waits for the handler to return, and Close closes it (the handler's reads
// and writes then fail) and cancels the request's context. No timeout of
// the server applies to it: a switched protocol keeps its own.
type Switched struct {
	c       *conn
	rw      io.ReadWriter // the connection through rawio (issue 11)
	drained bool          // c.br is empty: Read reads rw
}

// SwitchProtocols writes "101 Switching Protocols" with fields and the
// Connection and Upgrade fields naming protocol, sends it, and hands the
// connection to the handler. Fields named Connection, Upgrade,
// Content-Length or Transfer-Encoding, in any case, and fields that are not
// valid on the wire are dropped. The request must be an HTTP/1.1 request
// without a body, and nothing may have been written for it yet.
func (w *Response) SwitchProtocols(protocol string, fields []httpsyntax.Field) (*Switched, error) {
	if w.status != 0 || w.req.r.ProtoMinor != 1 || !w.req.body.done() || !httpsyntax.IsToken(protocol) {
		return nil, ErrNotSwitchable
	}
	// The watcher reads the connection to see the client leave; from here on
	// only the handler does (see conn.watchFrom).
	w.c.unwatch()
	w.c.s.setSwitched(w.c)
	w.headMu.Lock()
	w.status, w.headSent, w.switched = http.StatusSwitchingProtocols, true, true
	w.headMu.Unlock()

	bw := w.writer()
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for _, f := range fields {
		if !httpsyntax.IsToken(f.Name) || !httpsyntax.ValidFieldValue(f.Value) || httpsyntax.ClassOf(f.Name)&httpsyntax.Framing != 0 {
			continue
		}
		bw.WriteString(f.Name)
		bw.WriteString(": ")
		bw.WriteString(f.Value)
		bw.WriteString("\r\n")
	}
	bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
	bw.WriteString(protocol)
	bw.WriteString("\r\n\r\n")
	if err := w.flush(); err != nil {
		return nil, err
	}
	w.err = errSwitched // the response's own writes would corrupt the stream
	return &Switched{c: w.c, rw: rawio.Wrap(w.c.rwc)}, nil
}

// Read reads what the client sends, starting with anything it sent after the
// request head (or an error the server's reader kept), then from the socket
// into p directly, in one system call. One goroutine may read while another
// writes.
func (s *Switched) Read(p []byte) (int, error) {
	if s.drained {
		return s.rw.Read(p)
	}
	n, err := s.c.br.Read(p)
	s.drained = s.c.br.Buffered() == 0
	return n, err
}

// Write writes to the client at once, unbuffered.
func (s *Switched) Write(p []byte) (int, error) { return s.rw.Write(p) }

// CloseWrite shuts down the sending side: the client reads an end of input
// and may still send.
func (s *Switched) CloseWrite() error {
	if cw, ok := s.c.rwc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the connection; Read and Write return at once.
func (s *Switched) Close() error { return s.c.rwc.Close() }
