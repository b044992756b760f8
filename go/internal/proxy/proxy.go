// Package proxy is the server.Handler at the heart of the proxy: it lets only
// POST /v1/responses from local, non-browser clients (and from the pages
// Gate.Origins names) through, forwards it with the API key (or a workload
// identity access token) injected by the upstream client, and streams the
// answer back event by event.
//
// Clients get fixed statuses and short bodies; details go to the log only.
// Neither the key nor a request or response body ever reaches the log.
package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/dump"
	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/oidc"
	"github.com/openai/codex-responses-api-proxy/go/internal/server"
	"github.com/openai/codex-responses-api-proxy/go/internal/upstream"
)

// Config holds what the handler needs; zero limits mean the defaults below.
type Config struct {
	Gate     Gate
	Upstream *upstream.Client
	// Tokens, when set, lends each request the access token it sends
	// (workload identity, issue 10) instead of the client's Config.Auth.
	Tokens *oidc.Source
	// UpstreamURL is only reported in dumps.
	UpstreamURL string
	// Dumper, when set, records every forwarded exchange.
	Dumper *dump.Dumper
	// AllowPeer, when set, vets the local process behind each connection
	// (see peercred and Admit).
	AllowPeer func(net.Conn) (bool, error)
	// MaxBodyBytes caps a request body; beyond it the answer is 413.
	MaxBodyBytes int64
	// MaxHeaders caps the number of request header fields; beyond it, 431.
	MaxHeaders int
	// Shutdown is called once after a GET /shutdown has been answered.
	Shutdown func()
	// Logf receives the access log and errors; it must be safe for
	// concurrent use.
	Logf func(format string, args ...any)
}

// Defaults for the limits in Config.
const (
	DefaultMaxBodyBytes = 256 << 20
	DefaultMaxHeaders   = 100
)

// Handler is the proxy's server.Handler.
type Handler struct {
	cfg          Config
	shutdownOnce sync.Once
}

var _ server.Handler = (*Handler)(nil)

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxHeaders <= 0 {
		cfg.MaxHeaders = DefaultMaxHeaders
	}
	return &Handler{cfg: cfg}
}

// Admit is meant for server.Server.Admit: it vets the local process behind
// each new connection with AllowPeer, before anything is read from it.
func (h *Handler) Admit(c net.Conn) bool {
	if h.cfg.AllowPeer == nil {
		return true
	}
	ok, err := h.cfg.AllowPeer(c)
	if err != nil {
		h.cfg.Logf("identifying peer %s: %v", c.RemoteAddr(), err)
	}
	return ok
}

// Serve answers one request and logs one access line for it.
func (h *Handler) Serve(w *server.Response, r *server.Request) {
	start := time.Now()
	rec := &record{status: http.StatusForbidden}
	defer func() { h.logAccess(r, rec, start) }()

	switch h.cfg.Gate.route(r) {
	case routeShutdown:
		rec.status = http.StatusOK
		w.SetClose()
		w.WriteHeader(http.StatusOK, 0, nil)
		// Send the complete response before asking for the shutdown, which
		// then waits for this connection to go idle: `curl --fail` must see
		// a whole 200, not a reset.
		_ = w.Flush()
		h.shutdownOnce.Do(h.cfg.Shutdown)
	case routePreflight:
		// Answered here, never forwarded: only the gate decides which page
		// may call us (see Gate.preflight).
		rec.status = http.StatusNoContent
		w.WriteHeader(http.StatusNoContent, 0, preflightFields(r.Fields))
	case routeForward:
		h.forward(w, r, rec, h.cfg.Gate.grant(r.Fields))
	case routeWebSocket:
		h.webSocket(w, r, rec)
	default:
		// Nothing is read or forwarded; close so an unread body cannot be
		// taken for the next request.
		w.SetClose()
		fail(w, rec, http.StatusForbidden, "forbidden")
	}
}

// record is what the access log reports about a request.
type record struct {
	status    int
	bytes     int64 // to the client
	sent      int64 // to the upstream, counted for WebSockets only
	requestID string
}

func (h *Handler) logAccess(r *server.Request, rec *record, start time.Time) {
	id := rec.requestID
	if id == "" {
		id = "-"
	}
	// The method is a token, but of any length the head allows: bounded
	// like the target (issue 15).
	if rec.status == http.StatusSwitchingProtocols {
		// One line per WebSocket, when it has closed (issue 11).
		h.cfg.Logf("%s %s %d %dB %s upstream_request_id=%s websocket_sent=%dB",
			quote(r.Method), quote(r.Target), rec.status, rec.bytes,
			time.Since(start).Round(time.Microsecond), quote(id), rec.sent)
		return
	}
	h.cfg.Logf("%s %s %d %dB %s upstream_request_id=%s",
		quote(r.Method), quote(r.Target), rec.status, rec.bytes,
		time.Since(start).Round(time.Microsecond), quote(id))
}

// quote bounds and escapes untrusted text for a log line. Plain text, the
// usual case, is returned as is without allocating; anything with a space,
// quote, backslash, control or non-ASCII byte is quoted.
func quote(s string) string {
	const max = 128
	if len(s) > max {
		s = s[:max] + "..."
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	return s
}

// jsonType is the one field of the proxy's own answers.
var jsonType = []httpsyntax.Field{{Name: "Content-Type", Value: "application/json"}}

// fail answers with a fixed status and a short JSON error, in the shape the
// OpenAI API uses, so clients show something sensible; grant, if any, lets
// an allowed page read it.
func fail(w *server.Response, rec *record, status int, message string, grant ...httpsyntax.Field) {
	rec.status = status
	body := `{"error":{"message":"` + message + `","type":"proxy_error"}}` + "\n"
	w.WriteHeader(status, int64(len(body)), slices.Concat(jsonType, grant))
	n, _ := io.WriteString(w, body)
	rec.bytes = int64(n)
}

// forward sends r upstream and streams the answer back; grant is added to
// every answer, the upstream's and ours.
func (h *Handler) forward(w *server.Response, r *server.Request, rec *record, grant []httpsyntax.Field) {
	if len(r.Fields) > h.cfg.MaxHeaders {
		w.SetClose()
		fail(w, rec, http.StatusRequestHeaderFieldsTooLarge, "too many request headers", grant...)
		return
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		w.SetClose()
		fail(w, rec, http.StatusRequestEntityTooLarge, "request body too large", grant...)
		return
	}

	lease, ok := h.acquire(w, rec)
	if !ok {
		return
	}
	// The stream keeps its token to the end, even across a renewal.
	defer lease.Release()

	fields := outboundFields(r.Fields)
	body := &bodyReader{r: r.Body, limit: h.cfg.MaxBodyBytes, left: h.cfg.MaxBodyBytes}
	var ex *dump.Exchange
	var src io.Reader = body
	if h.cfg.Dumper != nil {
		ex = h.cfg.Dumper.Start()
		dr := &dumpReader{r: body, ex: ex, body: ex.Body(), method: r.Method, url: h.cfg.UpstreamURL, fields: fields}
		defer dr.abandon()
		src = dr
	}
	contentLength := r.ContentLength
	if r.Body == http.NoBody {
		contentLength = 0
	}

	var resp *upstream.Response
	var err error
	if h.cfg.Tokens == nil {
		resp, err = h.cfg.Upstream.Do(r.Context(), fields, src, contentLength)
	} else {
		resp, err = h.cfg.Upstream.DoAuth(r.Context(), lease.Line(), fields, src, contentLength)
	}
	if err != nil {
		h.upstreamFailed(w, r, rec, body, err, grant)
		return
	}
	if resp.StatusCode == http.StatusUnauthorized && h.cfg.Tokens != nil {
		// The 401 still goes to the client; the token is renewed at once.
		lease.Rejected()
	}
	h.answer(w, resp, rec, ex, grant)
}

// answer relays the upstream's response to the client, recording it in ex
// if dumping, and aborts the client connection if the stream breaks; grant
// is added to its fields.
func (h *Handler) answer(w *server.Response, resp *upstream.Response, rec *record, ex *dump.Exchange, grant []httpsyntax.Field) {
	defer resp.Body.Close()
	rec.requestID, _ = httpsyntax.Lookup(resp.Fields, "X-Request-Id")

	var out [32]httpsyntax.Field // a response has a dozen fields or so
	rec.status = resp.StatusCode
	w.WriteHeader(resp.StatusCode, resp.ContentLength, append(inboundFields(out[:0], resp.Fields), grant...))

	var captured *dump.Body
	var dst io.Writer = w
	if ex != nil {
		captured = ex.Body()
		dst = io.MultiWriter(w, captured)
	}
	n, err := stream(dst, w.Flush, resp.Body)
	rec.bytes = n
	if ex != nil {
		ex.Response(resp.StatusCode, resp.Fields, captured, err != nil)
	}
	if err != nil {
		h.cfg.Logf("streaming response: %v", err)
		// Abort the client connection instead of ending the body cleanly,
		// so a truncated stream is never mistaken for a complete one.
		panic(http.ErrAbortHandler)
	}
}

// acquire leases the access token a request sends, with workload identity;
// without a token to be had, it answers 503 and reports false, and nothing
// is read or forwarded (issue 10, 6). In key mode the lease is empty.
func (h *Handler) acquire(w *server.Response, rec *record) (oidc.Lease, bool) {
	if h.cfg.Tokens == nil {
		return oidc.Lease{}, true
	}
	lease, err := h.cfg.Tokens.Acquire()
	if err != nil {
		w.SetClose()
		fail(w, rec, http.StatusServiceUnavailable, err.Error())
		return oidc.Lease{}, false
	}
	return lease, true
}

// upstreamFailed answers a request whose upstream exchange did not produce
// a response: the client's own fault first, then the upstream's.
func (h *Handler) upstreamFailed(w *server.Response, r *server.Request, rec *record, body *bodyReader, err error, grant []httpsyntax.Field) {
	w.SetClose()
	var tooBig *http.MaxBytesError
	bodyErr := body.failure()
	switch {
	case errors.As(bodyErr, &tooBig):
		fail(w, rec, http.StatusRequestEntityTooLarge, "request body too large", grant...)
	case bodyErr != nil:
		h.cfg.Logf("reading request body: %v", bodyErr)
		fail(w, rec, http.StatusBadRequest, "incomplete request body", grant...)
	case r.Context().Err() != nil:
		rec.status = 499 // the client went away; nobody is left to answer
	default:
		h.cfg.Logf("forwarding to upstream: %v", err)
		fail(w, rec, http.StatusBadGateway, "upstream request failed", grant...)
	}
}

// bodyReader passes the client's body on, failing with *http.MaxBytesError
// past left bytes, and remembers the first error, so a client fault is told
// apart from an upstream fault. The upstream client may still be reading the
// body when Do returns, hence the lock.
type bodyReader struct {
	r     io.Reader
	limit int64
	left  int64 // reads are sequential
	mu    sync.Mutex
	err   error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte more tells a body over the limit
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		n, err = int(b.left), &http.MaxBytesError{Limit: b.limit}
	}
	b.left -= int64(n)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyReader) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// dumpReader captures the request body and writes the request file once the
// body has been read to its end, or failed, or, if neither, when the handler
// is done (abandon), marked aborted unless it ended cleanly. The upstream
// client's writer goroutine reads it, and may outlive the handler, hence the
// lock.
type dumpReader struct {
	r      io.Reader
	ex     *dump.Exchange
	method string
	url    string
	fields []httpsyntax.Field
	mu     sync.Mutex
	body   *dump.Body
	done   bool
}

func (d *dumpReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		d.body.Write(p[:n])
		if err != nil {
			d.end(err != io.EOF)
		}
	}
	return n, err
}

// abandon writes the request file of a body that was not read to its end.
func (d *dumpReader) abandon() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		d.end(true)
	}
}

func (d *dumpReader) end(aborted bool) {
	d.done = true
	d.ex.Request(d.method, d.url, d.fields, d.body, aborted)
}

// bufPool holds the copy buffers of streams that have data moving: 16 KiB
// is several events per read. A stream waiting for its next event holds none
// (see waiter), so 1,000 slow streams need a handful, not 16 MiB.
var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

const bufSize = 16 << 10

// waiter is implemented by upstream response bodies: Wait blocks until a
// Read would not, without a buffer of ours.
type waiter interface{ Wait() }

// stream copies src to dst, flushing after every read so each server-sent
// event reaches the client the moment it arrives, never batched. It returns
// the bytes written and the first error other than a clean end of src.
func stream(dst io.Writer, flush func() error, src io.Reader) (int64, error) {
	wt, _ := src.(waiter)
	var total int64
	for {
		if wt != nil {
			wt.Wait()
		}
		n, err := relay(dst, flush, src)
		total += int64(n)
		if err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}

// relay does one read from src and passes it on, holding a pooled buffer
// only for that long. It returns io.EOF, unwrapped, at the clean end of src.
func relay(dst io.Writer, flush func() error, src io.Reader) (int, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, rerr := src.Read(*bp)
	if n > 0 {
		m, werr := dst.Write((*bp)[:n])
		if werr != nil {
			return m, fmt.Errorf("writing: %w", werr)
		}
		if err := flush(); err != nil {
			return m, fmt.Errorf("flushing: %w", err)
		}
	}
	if rerr != nil && rerr != io.EOF {
		return n, fmt.Errorf("reading: %w", rerr)
	}
	return n, rerr
}
