package server

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
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

// maxEmptyLines bounds the empty lines skipped before a request line
// (RFC 9112, 2.2).
const maxEmptyLines = 4

// request is a parsed request with what the connection needs to know.
type request struct {
	r              *http.Request
	body           *body
	expectContinue bool // Expect: 100-continue with a body to come
	closeAfter     bool // the connection ends after the response
}

// readRequest reads one request head and frames its body.
func (c *conn) readRequest() (*request, error) {
	c.limitInput(true)
	req, err := c.readHead()
	if err != nil && c.src.remain <= 0 {
		return nil, &requestError{http.StatusRequestHeaderFieldsTooLarge, "request head too large"}
	}
	c.limitInput(false)
	return req, err
}

// limitInput bounds what may be read from the connection to a head's
// worth (MaxHeaderBytes and what the reader buffers beyond it), or lifts
// the bound, for a body.
func (c *conn) limitInput(head bool) {
	c.src.remain = math.MaxInt64
	if head {
		c.src.remain = int64(c.s.MaxHeaderBytes) + headSlop
	}
}

func (c *conn) readHead() (*request, error) {
	var line string
	for i := 0; line == "" && i <= maxEmptyLines; i++ {
		var err error
		if line, err = c.tp.ReadLine(); err != nil {
			return nil, err
		}
	}
	method, rest, ok1 := strings.Cut(line, " ")
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
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, badRequest("malformed request target")
	}
	// textproto checks that values hold no control bytes and replaces
	// obs-fold by a space (RFC 9112, 5.2).
	header, err := c.tp.ReadMIMEHeader()
	if err != nil {
		if c.src.remain > 0 && !isNetError(err) {
			return nil, badRequest("malformed header field")
		}
		return nil, err
	}
	for name := range header {
		// textproto keeps a name with a space before the colon, as is
		// (go.dev/issue/34540): "Transfer-Encoding : chunked" would frame
		// the body for another parser and not for this one. RFC 9112, 5.1:
		// reject with 400.
		if !httpsyntax.IsToken(name) {
			return nil, badRequest("malformed header field")
		}
	}
	h := http.Header(header)

	hosts := h["Host"]
	if len(hosts) > 1 || (len(hosts) == 0 && minor == 1) || (len(hosts) == 1 && !httpsyntax.ValidHost(hosts[0])) {
		return nil, badRequest("exactly one valid Host field is required")
	}
	host := ""
	if len(hosts) == 1 {
		host = hosts[0]
	}
	delete(h, "Host")

	req := &request{closeAfter: minor == 0 || hasToken(h["Connection"], "close")}
	b, err := c.frameBody(h, minor, req)
	if err != nil {
		return nil, err
	}
	req.body = b
	if expect, ok := h["Expect"]; ok {
		if len(expect) != 1 || !strings.EqualFold(expect[0], "100-continue") {
			return nil, &requestError{http.StatusExpectationFailed, "only Expect: 100-continue is supported"}
		}
		req.expectContinue = minor == 1 && !b.done()
	}

	r := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      proto,
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Host:       host,
		RequestURI: target,
		RemoteAddr: c.addr,
		Close:      req.closeAfter,
	}
	r.ContentLength = b.length
	if b.chunks != nil {
		r.TransferEncoding = []string{"chunked"}
	}
	r.Body = http.NoBody
	if !b.done() {
		r.Body = b
	}
	req.r = r.WithContext(c.ctx)
	return req, nil
}

// frameBody decides how the body is delimited (RFC 9112, 6), refusing
// every ambiguous case.
func (c *conn) frameBody(h http.Header, minor int, req *request) (*body, error) {
	te, hasTE := h["Transfer-Encoding"]
	cl, hasCL := h["Content-Length"]
	b := &body{c: c}
	switch {
	case hasTE && hasCL:
		return nil, badRequest("both Transfer-Encoding and Content-Length")
	case hasTE && minor == 0:
		return nil, badRequest("Transfer-Encoding in an HTTP/1.0 request")
	case hasTE:
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return nil, &requestError{http.StatusNotImplemented, "only Transfer-Encoding: chunked is supported"}
		}
		delete(h, "Transfer-Encoding")
		b.length = -1
		b.chunks = httputil.NewChunkedReader(c.br)
		req.closeAfter = true // a chunked request is never followed by another
	case hasCL:
		n, ok := parseLength(cl)
		if !ok {
			return nil, badRequest("malformed Content-Length")
		}
		b.length, b.remain = n, n
	}
	if b.chunks == nil && b.remain == 0 {
		b.eof.Store(true)
	}
	return b, nil
}

// parseLength accepts exactly one Content-Length field of 1 to 18 digits.
func parseLength(values []string) (int64, bool) {
	if len(values) != 1 || len(values[0]) == 0 || len(values[0]) > 18 {
		return 0, false
	}
	for _, ch := range []byte(values[0]) {
		if ch < '0' || ch > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(values[0], 10, 64)
	return n, err == nil
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
	var n int
	var err error
	if b.chunks != nil {
		n, err = b.chunks.Read(p)
		if err == io.EOF {
			// The trailer section is read, within the head's limit, and
			// dropped: trailers are never forwarded.
			b.c.limitInput(true)
			if _, terr := b.c.tp.ReadMIMEHeader(); terr != nil {
				err = badRequest("malformed or oversized trailer section")
			}
			b.c.limitInput(false)
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

// validTarget accepts visible ASCII only: no spaces, controls or raw UTF-8.
func validTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header list holds token,
// ignoring case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

func isNetError(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}
