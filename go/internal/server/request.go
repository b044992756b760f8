package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// requestError is a request that gets a fixed status and a closed
// connection; reason is a fixed text, never a byte of the request.
type requestError struct {
	status int
	reason string
}

func (e *requestError) Error() string { return e.reason }

func badRequest(reason string) error {
	return &requestError{http.StatusBadRequest, reason}
}

// Request is one request as a Handler sees it. Its strings and Fields are
// not reused after the handler returns; its Body must not be read then.
type Request struct {
	Method string
	// Target is the request-target exactly as received.
	Target string
	// ProtoMinor is 0 for HTTP/1.0 and 1 for HTTP/1.1.
	ProtoMinor int
	// Host is the Host field's value; empty only in HTTP/1.0 without one.
	Host string
	// Fields are the header fields in the order received, but for Host.
	Fields []httpsyntax.Field
	// ContentLength is the body's length, or -1 for a chunked body.
	ContentLength int64
	// Body is the request body; http.NoBody when there is none.
	Body       io.ReadCloser
	RemoteAddr string

	ctx context.Context
}

// Context is the request's context, cancelled when the client leaves or the
// server closes (see ErrClientGone and ErrServerClosed).
func (r *Request) Context() context.Context { return r.ctx }

// request is a parsed request with what the connection needs to know.
type request struct {
	r              *Request
	body           *body
	expectContinue bool // Expect: 100-continue with a body to come
	closeAfter     bool // the connection ends after the response
}

// readRequest reads one request head and frames its body.
func (c *conn) readRequest() (*request, error) {
	if err := c.head.Read(c.br, c.s.MaxHeaderBytes, true); err != nil {
		switch err {
		case httpsyntax.ErrTooLarge:
			return nil, &requestError{http.StatusRequestHeaderFieldsTooLarge, "request head too large"}
		case httpsyntax.ErrMalformed:
			return nil, badRequest("malformed request head")
		}
		return nil, err
	}
	method, rest, ok1 := strings.Cut(c.head.Start, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !httpsyntax.IsToken(method) || !validTarget(target) {
		return nil, badRequest("malformed request line")
	}
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") {
			return nil, &requestError{http.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served"}
		}
		return nil, badRequest("malformed request line")
	}
	r := &Request{Method: method, Target: target, ProtoMinor: minor, RemoteAddr: c.addr, ctx: c.ctx}
	req := &request{r: r, closeAfter: minor == 0}
	var hosts int
	var te, cl, expect counted
	fields := c.head.Fields[:0] // filtered in place: Read made them for us
	for _, f := range c.head.Fields {
		switch {
		case strings.EqualFold(f.Name, "Host"):
			hosts++
			r.Host = f.Value
			continue
		case strings.EqualFold(f.Name, "Transfer-Encoding"):
			te.add(f.Value)
		case strings.EqualFold(f.Name, "Content-Length"):
			cl.add(f.Value)
		case strings.EqualFold(f.Name, "Expect"):
			expect.add(f.Value)
		case strings.EqualFold(f.Name, "Connection"):
			req.closeAfter = req.closeAfter || httpsyntax.ListHasToken(f.Value, "close")
		}
		fields = append(fields, f)
	}
	if hosts > 1 || (hosts == 0 && minor == 1) || (hosts == 1 && !httpsyntax.ValidHost(r.Host)) {
		return nil, badRequest("exactly one valid Host field is required")
	}
	b, err := c.frameBody(te, cl, minor, req)
	if err != nil {
		return nil, err
	}
	req.body = b
	if expect.n > 0 {
		if expect.n != 1 || !strings.EqualFold(expect.value, "100-continue") {
			return nil, &requestError{http.StatusExpectationFailed, "only Expect: 100-continue is supported"}
		}
		req.expectContinue = minor == 1 && !b.done()
	}
	r.Fields = fields
	r.ContentLength = b.length
	r.Body = http.NoBody
	if !b.done() {
		r.Body = b
	}
	return req, nil
}

// counted is how many fields of one name a head has, and the first value.
type counted struct {
	n     int
	value string
}

func (c *counted) add(v string) {
	if c.n == 0 {
		c.value = v
	}
	c.n++
}

// frameBody decides how the body is delimited (RFC 9112, 6), refusing
// every ambiguous case.
func (c *conn) frameBody(te, cl counted, minor int, req *request) (*body, error) {
	b := &body{c: c}
	switch {
	case te.n > 0 && cl.n > 0:
		return nil, badRequest("both Transfer-Encoding and Content-Length")
	case te.n > 0 && minor == 0:
		return nil, badRequest("Transfer-Encoding in an HTTP/1.0 request")
	case te.n > 0:
		if te.n != 1 || !strings.EqualFold(te.value, "chunked") {
			return nil, &requestError{http.StatusNotImplemented, "only Transfer-Encoding: chunked is supported"}
		}
		b.length = -1
		b.chunks = httputil.NewChunkedReader(c.br)
		req.closeAfter = true // a chunked request is never followed by another
	case cl.n > 0:
		n, ok := httpsyntax.ParseLength(cl.value)
		if cl.n != 1 || !ok {
			return nil, badRequest("malformed Content-Length")
		}
		b.length, b.remain = n, n
	}
	if b.chunks == nil && b.remain == 0 {
		b.eof.Store(true)
	}
	return b, nil
}

// body is a request body read from the connection's buffered reader. Only
// one goroutine reads it at a time (the handler's, or the upstream writer's
// it hands it to); the connection checks done after the handler returns,
// and reads the connection again only if done.
type body struct {
	c      *conn
	length int64 // Content-Length, -1 if chunked
	remain int64
	chunks io.Reader // the chunked decoder, nil for a Content-Length body
	// onDone is called once, when the body has been read to its end.
	onDone func()
	// beforeRead, if set, is called before the first read: it sends
	// "100 Continue".
	beforeRead func()
	started    atomic.Bool // Read was called
	eof        atomic.Bool
	closed     atomic.Bool
	err        error // sticky read error
}

// done reports whether the body has been read to its end.
func (b *body) done() bool { return b.eof.Load() }

func (b *body) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	b.started.Store(true)
	if b.beforeRead != nil {
		b.beforeRead()
		b.beforeRead = nil
	}
	// A read that may wait on the client is bounded by BodyTimeout (the
	// sweeper closes the connection; see Server.sweep); one served from the
	// buffer costs no clock read.
	if t := b.c.s.BodyTimeout; t > 0 && (b.chunks != nil || b.c.br.Buffered() == 0) {
		b.c.expireIn(t)
		defer b.c.deadline.Store(0)
	}
	var n int
	var err error
	if b.chunks != nil {
		n, err = b.chunks.Read(p)
		if err == io.EOF {
			// The trailer section is read, within the head's limit, and
			// dropped: trailers are never forwarded.
			if terr := b.c.head.Read(b.c.br, b.c.s.MaxHeaderBytes, false); terr != nil {
				err = badRequest("malformed or oversized trailer section")
			}
		}
	} else {
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err = b.c.br.Read(p)
		b.remain -= int64(n)
		switch {
		case b.remain == 0:
			err = io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
	}
	if err == io.EOF {
		// onDone first: the connection moves on to its next request only
		// once eof is visible, so a late onDone cannot fall into the next
		// request's watch (see conn.watchFrom).
		if b.onDone != nil {
			b.onDone()
		}
		b.eof.Store(true)
		return n, io.EOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// Close makes later reads fail; it does not read what is left, which the
// connection deals with (see conn.handle).
func (b *body) Close() error {
	b.closed.Store(true)
	return nil
}

// validTarget accepts visible ASCII only (no spaces, controls or raw
// UTF-8), in a form url.ParseRequestURI takes; a plain origin-form path, the
// usual case, is checked without it.
func validTarget(s string) bool {
	if s == "" {
		return false
	}
	plain := s[0] == '/'
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
		plain = plain && s[i] != '%'
	}
	if plain {
		return true
	}
	_, err := url.ParseRequestURI(s)
	return err == nil
}
