// Package upstream is a small HTTP/1.1 client that sends POST (or GET)
// requests to one fixed upstream URL and writes the API key to the connection without ever
// copying it (issue 4: exactly one copy of the key in the process).
//
// Why not net/http: http.Transport copies every header value into its
// bufio.Writer and into header maps, so after traffic the key would sit in
// unlocked heap memory, several times. Here the key arrives as one read-only
// slice of locked memory, Config.Auth = "Authorization: Bearer <key>\r\n",
// and is handed to the connection as its own buffer:
//
//   - plain TCP: net.Buffers{head, auth, framing}.WriteTo(conn) is a writev;
//     the kernel copies the bytes straight from the locked page.
//   - TLS: tls.Conn.Write(auth) as a call of its own, over TLS 1.2 with AEAD
//     suites only, which seal from the source slice straight into the record
//     buffer. TLS 1.3 is not offered: Go's TLS 1.3 record layer appends the
//     plaintext to a pooled scratch buffer and seals it there, and when that
//     buffer is too small for the tag, Seal moves to a new one and the old
//     one is dropped with the plaintext in it (crypto/tls halfConn.encrypt);
//     the key census found such a copy of the key in the heap. CBC suites are
//     disabled because their HMAC would keep a tail of the plaintext in the
//     hash state.
//
// The auth slice is never converted to a string, never put in an http.Header,
// and never written into a buffer of this package (the pooled head and body
// buffers hold everything else). Only HTTP/1.1 is offered over ALPN, so the
// key can never enter an HTTP/2 HPACK dynamic table.
//
// Proxies (HTTPS_PROXY/NO_PROXY by default) are used only for https
// upstreams, through a CONNECT tunnel, so the key stays inside the TLS
// session with the upstream. An http upstream is always dialled directly:
// the key is never sent in clear text through a proxy.
//
// Errors name the step that failed (dial, tls handshake, write request, read
// response header) and never contain header values or body bytes.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 10 * time.Minute // a non-streamed answer from a reasoning model arrives only when it is done
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdleConns          = 256
)

// max1xx bounds the informational responses skipped before the final one.
const max1xx = 5

// Config describes the upstream. Zero durations and counts take the defaults
// above; a negative ResponseHeaderTimeout means no limit.
type Config struct {
	URL                   *url.URL      // absolute http(s) URL; the request target is URL.RequestURI() verbatim
	Auth                  []byte        // "Authorization: Bearer <key>\r\n", written as-is and never copied
	NoAuth                bool          // Auth is empty: Do sends no auth line, DoAuth the caller's
	ZeroBuffers           bool          // zero the pooled head after each request and the read buffer in CloseIdleConnections: they hold secrets
	Method                string        // "POST" (the default) or "GET"
	DialTimeout           time.Duration // TCP connect, and the CONNECT exchange with a proxy
	TLSHandshakeTimeout   time.Duration // TLS handshake with the upstream (and with an https proxy)
	ResponseHeaderTimeout time.Duration // from the end of the request head to the final response header
	IdleConnTimeout       time.Duration // how long an unused keep-alive connection stays pooled
	MaxIdleConns          int           // pooled keep-alive connections at most
	RootCAs               *x509.CertPool
	// Proxy picks the proxy for an https upstream; nil means HTTPS_PROXY and
	// NO_PROXY from the environment (http.ProxyFromEnvironment semantics).
	// A nil URL means direct. It is never consulted for http upstreams.
	Proxy func(*url.URL) (*url.URL, error)
}

// Client sends requests to the configured upstream over pooled HTTP/1.1
// connections. It is safe for concurrent use.
type Client struct {
	auth       []byte
	method     string
	zero       bool
	host       string      // Host header: URL host[:port] as given
	addr       string      // dial address host:port
	target     string      // request target
	tls        *tls.Config // nil for http upstreams
	proxy      func(*url.URL) (*url.URL, error)
	url        *url.URL
	dialer     net.Dialer
	tlsTimeout time.Duration
	hdrTimeout time.Duration
	idleTime   time.Duration
	maxIdle    int

	mu       sync.Mutex
	idle     []*conn     // LIFO: the most recently used connection is last
	sweeper  *time.Timer // runs sweep
	sweeping bool        // sweeper is armed
}

// New validates cfg and returns a Client. It fails for anything but an
// absolute http or https URL with a host, for an empty Auth line unless
// NoAuth is set (and for a non-empty one if it is), or for a Method other
// than POST or GET.
func New(cfg Config) (*Client, error) {
	u := cfg.URL
	if u == nil {
		return nil, errors.New("upstream URL is missing")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("upstream URL scheme %q is not http or https", trim(u.Scheme))
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("upstream URL has no host")
	}
	if u.Opaque != "" || u.User != nil {
		return nil, errors.New("upstream URL must be of the form scheme://host[:port]/path[?query] without user info")
	}
	target := u.RequestURI()
	if !httpsyntax.ValidFieldValue(u.Host) || strings.ContainsAny(u.Host, " \t") || !httpsyntax.ValidFieldValue(target) || strings.ContainsAny(target, " \t") {
		return nil, errors.New("upstream URL contains control characters or spaces")
	}
	if len(cfg.Auth) == 0 && !cfg.NoAuth {
		return nil, errors.New("upstream auth line is empty")
	}
	if len(cfg.Auth) != 0 && cfg.NoAuth {
		return nil, errors.New("upstream auth line given with NoAuth")
	}
	method := cfg.Method
	switch method {
	case "":
		method = http.MethodPost
	case http.MethodPost, http.MethodGet:
	default:
		return nil, fmt.Errorf("upstream method %q is not POST or GET", trim(method))
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	c := &Client{
		auth:       cfg.Auth,
		method:     method,
		zero:       cfg.ZeroBuffers,
		host:       u.Host,
		addr:       net.JoinHostPort(u.Hostname(), port),
		target:     target,
		url:        u,
		dialer:     net.Dialer{Timeout: orDefault(cfg.DialTimeout, DefaultDialTimeout)},
		tlsTimeout: orDefault(cfg.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		hdrTimeout: orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		idleTime:   orDefault(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
		maxIdle:    cfg.MaxIdleConns,
	}
	if c.maxIdle <= 0 {
		c.maxIdle = DefaultMaxIdleConns
	}
	if u.Scheme == "https" {
		c.tls = newTLSConfig(u.Hostname(), cfg.RootCAs)
		c.proxy = cfg.Proxy
		if c.proxy == nil {
			c.proxy = proxyFromEnvironment
		}
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func proxyFromEnvironment(u *url.URL) (*url.URL, error) {
	return http.ProxyFromEnvironment(&http.Request{URL: u})
}

// newTLSConfig offers HTTP/1.1 only (no HPACK table can ever hold the key),
// and TLS 1.2 only, with forward-secret AEAD suites only (see the package
// comment).
func newTLSConfig(serverName string, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		MaxVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		RootCAs:    roots,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
}

// Do sends the request (a POST unless Config.Method says GET) with fields,
// the Auth line and body to the upstream and
// returns its final (non-1xx) response, redirects included, its body
// decoded from chunked framing only.
//
// fields must already be filtered by the caller; Host, Authorization,
// Content-Length and Transfer-Encoding in it are an error, as is any name
// that is not a token or any value with a control character. contentLength
// >= 0 sends exactly that many bytes of body (fewer is an error); < 0 is a
// body of unknown length: one that ends within 32 KiB is read to its end
// before the upstream is contacted and sent with its Content-Length, so its
// read errors are returned with nothing sent (issue 12); a longer one is
// sent chunked, terminated only after body returned io.EOF. A body read
// error aborts the connection and is wrapped in the returned error (also by
// Response.Body.Read when the response has already arrived).
//
// The body is written by a goroutine while the response is read; it may
// still be inside body.Read when Do returns an error or the response body is
// closed, so body must tolerate a concurrent Close (request bodies of the
// proxy's server and of net/http do). Cancelling ctx closes the connection
// at any stage, mid-stream too.
// The caller must close Response.Body, which also has a method Wait(): it
// blocks until a Read would not (see respBody.Wait).
func (c *Client) Do(ctx context.Context, fields []httpsyntax.Field, body io.Reader, contentLength int64) (*Response, error) {
	return c.DoAuth(ctx, c.auth, fields, body, contentLength)
}

// DoAuth is Do with auth, one request's header line ("Authorization: Bearer
// <token>\r\n"), instead of Config.Auth: it is written as-is, never copied,
// and not used once DoAuth has returned, so the caller may release it then
// (workload identity, issue 10, renews its tokens under running requests).
func (c *Client) DoAuth(ctx context.Context, auth []byte, fields []httpsyntax.Field, body io.Reader, contentLength int64) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("upstream request: %w", context.Cause(ctx))
	}
	h := getHead()
	defer func() {
		if c.zero {
			// A body sent inline with the head (the token exchange's
			// JWT, issue 10) must not wait in the pool for reuse.
			clear(h.buf[:cap(h.buf)])
		}
		putHead(h)
	}()
	split, err := h.build(c, fields, contentLength)
	if err != nil {
		return nil, err
	}
	if body == nil {
		body = http.NoBody
	}
	// A small body of known length is read first and leaves with the head in
	// one write: no writer goroutine, no second system call (issue 5). It
	// also makes a retry on a stale pooled connection possible.
	if contentLength > 0 && contentLength <= bodyBufSize {
		if err := h.readBody(body, int(contentLength)); err != nil {
			return nil, fmt.Errorf("reading request body: %w", err)
		}
		body, contentLength = http.NoBody, 0
	}
	head := [][]byte{h.buf[:split], auth, h.buf[split:]}
	if contentLength < 0 {
		tail, rest, err := h.readAhead(body)
		if err != nil {
			return nil, fmt.Errorf("reading request body: %w", err)
		}
		head[2] = tail
		if body = rest; rest == nil {
			body, contentLength = http.NoBody, 0
		}
	}
	for fresh := false; ; fresh = true {
		pc, reused, err := c.getConn(ctx, fresh)
		if err != nil {
			return nil, err
		}
		resp, retry, err := c.roundTrip(ctx, pc, head, body, contentLength)
		if err == nil {
			return resp, nil
		}
		if !retry || !reused || fresh {
			return nil, err
		}
	}
}

// CloseIdleConnections closes every pooled connection, zeroing its read
// buffer first with Config.ZeroBuffers. Connections in use are not affected.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := len(c.idle); n > 0; n = len(c.idle) {
		pc := c.idle[n-1]
		c.removeIdleLocked(n - 1)
		if c.zero {
			pc.wipe()
		}
		pc.close()
	}
}

// trim shortens untrusted text quoted in errors.
func trim(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
