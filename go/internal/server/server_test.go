package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// testTimeout bounds every wait in these tests, so that a hung server fails
// a test instead of stalling the run.
const testTimeout = 5 * time.Second

// testLog collects what a Server logs.
type testLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *testLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *testLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

type testServer struct {
	*Server
	addr   string
	log    *testLog
	served chan error
	once   sync.Once
	err    error
}

// startServer serves h on a new loopback listener. Its timeouts are long
// enough never to fire unless configure lowers them. Cleanup closes the
// server and checks that Serve returned ErrServerClosed.
func startServer(tb testing.TB, h HandlerFunc, configure ...func(*Server)) *testServer {
	tb.Helper()
	return serveOn(tb, listen(tb), h, configure...)
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

func serveOn(tb testing.TB, ln net.Listener, h HandlerFunc, configure ...func(*Server)) *testServer {
	tb.Helper()
	log := &testLog{}
	s := &Server{
		Handler:           h,
		ReadHeaderTimeout: testTimeout,
		IdleTimeout:       testTimeout,
		MaxHeaderBytes:    8 << 10,
		Logf:              log.logf,
	}
	for _, f := range configure {
		f(s)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), log: log, served: make(chan error, 1)}
	go func() { ts.served <- s.Serve(ln) }()
	tb.Cleanup(func() {
		s.Close()
		if err := ts.serveResult(); !errors.Is(err, ErrServerClosed) {
			tb.Errorf("Serve: got %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// serveResult waits for Serve to return and gives its error.
func (ts *testServer) serveResult() error {
	ts.once.Do(func() {
		select {
		case ts.err = <-ts.served:
		case <-time.After(testTimeout):
			ts.err = errors.New("Serve did not return")
		}
	})
	return ts.err
}

// client is one loopback connection to a test server.
type client struct {
	tb   testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dial(tb testing.TB, addr string) *client {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(testTimeout))
	tb.Cleanup(func() { conn.Close() })
	return &client{tb: tb, conn: conn, br: bufio.NewReader(conn)}
}

func (c *client) write(s string) {
	c.tb.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.tb.Fatalf("writing request: %v", err)
	}
}

// head reads the head of a response to a request with method.
func (c *client) head(method string) *http.Response {
	c.tb.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.tb.Fatalf("reading response: %v", err)
	}
	return resp
}

// response reads a whole response to a request with method.
func (c *client) response(method string) (*http.Response, string) {
	c.tb.Helper()
	resp := c.head(method)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatalf("reading response body: %v (got %q)", err, body)
	}
	return resp, string(body)
}

// closed checks that the server closed the connection cleanly: the next
// read is EOF, with no byte before it.
func (c *client) closed() {
	c.tb.Helper()
	if b, err := c.br.Peek(1); err != io.EOF {
		rest, _ := io.ReadAll(c.br)
		c.tb.Fatalf("after the response: got %q, %v; want EOF", append(b, rest...), err)
	}
}

// gone checks that the server closed the connection without another byte;
// a reset is fine too.
func (c *client) gone() {
	c.tb.Helper()
	b, err := c.br.Peek(1)
	if len(b) > 0 || (err != io.EOF && !isReset(err)) {
		c.tb.Fatalf("got %q, %v; want EOF or a reset", b, err)
	}
}

// isReset reports a connection reset. On Windows a reset is WSAECONNRESET
// (10054), which syscall.ECONNRESET does not match (found under wine, issue 13).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		runtime.GOOS == "windows" && errors.Is(err, syscall.Errno(10054))
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"
}

func okHandler(w *Response, r *Request) {
	io.WriteString(w, "ok")
}

// echo answers with the request's path and body.
func echo(w *Response, r *Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest, -1, nil)
		io.WriteString(w, "body error")
		return
	}
	fmt.Fprintf(w, "%s %s", r.Target, b)
}

// fieldLines is fields as "Name: value" strings, for a handler to show what
// it got, in order and case.
func fieldLines(fields []httpsyntax.Field) []string {
	lines := []string{}
	for _, f := range fields {
		lines = append(lines, f.Name+": "+f.Value)
	}
	return lines
}

// wait receives from ch within testTimeout; handlers use it, as they must
// not stop the test.
func wait[T any](ch <-chan T) bool {
	select {
	case <-ch:
		return true
	case <-time.After(testTimeout):
		return false
	}
}

// waitFor receives from ch within testTimeout.
func waitFor[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestRejectsMalformedAndAmbiguousRequests(t *testing.T) {
	t.Parallel()
	const host = "Host: x\r\n"
	tests := []struct {
		name string
		req  string
		want int
	}{
		// Framing: RFC 9112, 6.1 and 6.3.
		{"TE and CL", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"CL and TE", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE gzip", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", 501},
		{"TE chunked, gzip", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, gzip\r\n\r\n", 501},
		{"TE gzip, chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"two TE fields", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"TE folded", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\n", 400},
		{"empty TE", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: \r\n\r\n", 501},
		{"two identical CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: 2\r\nContent-Length: 2\r\n\r\nab", 400},
		{"CL list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 2, 2\r\n\r\nab", 400},
		{"CL +2", "POST / HTTP/1.1\r\n" + host + "Content-Length: +2\r\n\r\nab", 400},
		{"CL -1", "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400},
		{"CL 2x", "POST / HTTP/1.1\r\n" + host + "Content-Length: 2x\r\n\r\nab", 400},
		{"CL 0x2", "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x2\r\n\r\nab", 400},
		{"CL blank", "POST / HTTP/1.1\r\n" + host + "Content-Length:  \r\n\r\nab", 400},
		{"CL folded", "POST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\n 2\r\n\r\nab", 400},
		{"CL 19 digits", "POST / HTTP/1.1\r\n" + host + "Content-Length: 1000000000000000000\r\n\r\n", 400},
		// Host: RFC 9112, 3.2.
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Host fields", "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400},
		{"two Host fields differently cased", "GET / HTTP/1.1\r\nhost: x\r\nHOST: y\r\n\r\n", 400},
		{"empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400},
		{"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"Host with userinfo", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400},
		{"Host with a backslash", "GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n", 400},
		{"Host with UTF-8", "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400},
		{"bad Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a/b\r\n\r\n", 400},
		// Version: RFC 9112, 2.3.
		{"HTTP/2.0", "GET / HTTP/2.0\r\n" + host + "\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\n" + host + "\r\n", 505},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n" + host + "\r\n", 505},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"HTTP/1.10", "GET / HTTP/1.10\r\n" + host + "\r\n", 400},
		{"lowercase version", "GET / http/1.1\r\n" + host + "\r\n", 400},
		{"no version", "GET /\r\n" + host + "\r\n", 400},
		// Request line: RFC 9112, 3.
		{"garbage", "hello\r\n\r\n", 400},
		{"bare spaces", "   \r\n\r\n", 400},
		{"double space before target", "GET  / HTTP/1.1\r\n" + host + "\r\n", 400},
		{"double space before version", "GET /  HTTP/1.1\r\n" + host + "\r\n", 400},
		{"leading space", " GET / HTTP/1.1\r\n" + host + "\r\n", 400},
		{"trailing space", "GET / HTTP/1.1 \r\n" + host + "\r\n", 400},
		{"tabs", "GET\t/\tHTTP/1.1\r\n" + host + "\r\n", 400},
		{"four parts", "GET / x HTTP/1.1\r\n" + host + "\r\n", 400},
		{"method not a token", "G(T / HTTP/1.1\r\n" + host + "\r\n", 400},
		{"relative target", "GET foo HTTP/1.1\r\n" + host + "\r\n", 400},
		{"UTF-8 in target", "GET /\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", 400},
		{"control byte in target", "GET /\x01 HTTP/1.1\r\n" + host + "\r\n", 400},
		{"too many empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n", 400},
		// Fields: RFC 9112, 5.
		{"space before colon", "GET / HTTP/1.1\r\n" + host + "X-A : b\r\n\r\n", 400},
		{"Host with space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"CL with space before colon", "POST / HTTP/1.1\r\n" + host + "Content-Length : 2\r\n\r\nab", 400},
		{"TE with space before colon", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"tab before colon", "GET / HTTP/1.1\r\n" + host + "X-A\t: b\r\n\r\n", 400},
		{"name not a token", "GET / HTTP/1.1\r\n" + host + "X(A): b\r\n\r\n", 400},
		{"name with UTF-8", "GET / HTTP/1.1\r\n" + host + "X-\xc3\xa9: b\r\n\r\n", 400},
		{"empty name", "GET / HTTP/1.1\r\n" + host + ": b\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\n" + host + "X-A b\r\n\r\n", 400},
		{"first field folded", "GET / HTTP/1.1\r\n " + host + "\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n", 400},
		{"bare CR in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\rX-B: b\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n", 400},
		{"obs-fold with a tab", "GET / HTTP/1.1\r\n" + host + "X-A: a\r\n\tb\r\n\r\n", 400},
		// Line ends: CRLF only, a bare LF or CR anywhere is refused
		// (issue 12).
		{"bare LF line ends", "GET / HTTP/1.1\nHost: x\nX-A: b\n\n", 400},
		{"bare LF ends the request line", "POST / HTTP/1.1\n" + host + "Content-Length: 2\r\n\r\nab", 400},
		{"bare LF in a field splits it", "POST / HTTP/1.1\r\n" + host + "X-Lf: a\nX-Injected-Lf: yes\r\nContent-Length: 2\r\n\r\nab", 400},
		{"bare LF ends a field", "GET / HTTP/1.1\r\n" + host + "X-A: b\n\r\n", 400},
		{"bare LF ends the head", "GET / HTTP/1.1\r\n" + host + "\n", 400},
		{"bare LF before the request line", "\nGET / HTTP/1.1\r\n" + host + "\r\n", 400},
		{"bare CR in the request line", "GET /a\rb HTTP/1.1\r\n" + host + "\r\n", 400},
		{"bare CR ends the request line", "GET / HTTP/1.1\r" + host + "\r\n", 400},
		{"bare CR ends a field", "GET / HTTP/1.1\r\n" + host + "X-A: b\r\r\n\r\n", 400},
		{"bare CR in the empty line", "GET / HTTP/1.1\r\n" + host + "\r\r\n\r\n", 400},
		{"escape in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x1bb\r\n\r\n", 400},
		{"DEL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x7fb\r\n\r\n", 400},
		// Expect: RFC 9110, 10.1.1.
		{"Expect other", "POST / HTTP/1.1\r\n" + host + "Expect: something\r\nContent-Length: 2\r\n\r\nab", 417},
		{"two Expect fields", "POST / HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", 417},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var called atomic.Int64
			ts := startServer(t, func(w *Response, r *Request) { called.Add(1) })
			c := dial(t, ts.addr)
			c.write(tt.req)
			resp, body := c.response("GET")
			if resp.StatusCode != tt.want {
				t.Errorf("got %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if !resp.Close {
				t.Errorf("got no Connection: close")
			}
			c.closed()
			if n := called.Load(); n != 0 {
				t.Errorf("handler called %d times, want 0", n)
			}
			if logs := ts.log.all(); len(logs) != 1 || !strings.Contains(logs[0], fmt.Sprintf(": %d ", tt.want)) {
				t.Errorf("got log %q, want one line with %d", logs, tt.want)
			}
		})
	}
}

// TestRejectLogOmitsRequestBytes checks that neither the log nor the answer
// to a rejected request repeats what the client sent: a bearer token
// included.
func TestRejectLogOmitsRequestBytes(t *testing.T) {
	t.Parallel()
	const secret = "sk-test-0123456789"
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"POST / HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer " + secret + "\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\x00\r\n\r\n",
		"POST /" + secret + " HTTP/9.9\r\n\r\n",
	} {
		ts := startServer(t, okHandler)
		c := dial(t, ts.addr)
		c.write(req)
		_, body := c.response("POST")
		c.closed()
		if logs := strings.Join(ts.log.all(), "\n"); logs == "" || strings.Contains(logs+body, secret) {
			t.Errorf("request %q: got log %q and answer %q, want a log line without the secret", req, logs, body)
		}
	}
}

// TestAcceptsRequests checks what a handler sees of requests the server
// accepts, lenient cases included.
func TestAcceptsRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  string
		want string
	}{
		{"origin form", "GET /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
			`GET /p?q=1 HTTP/1.1 host="127.0.0.1:8080" cl=0 fields=[] body=""`},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n",
			`GET / HTTP/1.0 host="" cl=0 fields=[] body=""`},
		{"IPv6 literal Host", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
			`GET / HTTP/1.1 host="[::1]:80" cl=0 fields=[] body=""`},
		{"lowercase field names", "GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n\r\n",
			`GET / HTTP/1.1 host="x" cl=0 fields=["x-a: b"] body=""`},
		{"fields in order received", "GET / HTTP/1.1\r\nX-B: 1\r\nHost: x\r\nX-A: 2\r\nx-b: 3\r\n\r\n",
			`GET / HTTP/1.1 host="x" cl=0 fields=["X-B: 1" "X-A: 2" "x-b: 3"] body=""`},
		{"tab in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n",
			`GET / HTTP/1.1 host="x" cl=0 fields=["X-A: a\tb"] body=""`},
		{"empty lines before the request", "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
			`GET / HTTP/1.1 host="x" cl=0 fields=[] body=""`},
		{"Content-Length with leading zeros", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello",
			`POST / HTTP/1.1 host="x" cl=5 fields=["Content-Length: 005"] body="hello"`},
		{"chunked in capitals", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
			`POST / HTTP/1.1 host="x" cl=-1 fields=["Transfer-Encoding: CHUNKED"] body="hi"`},
		{"Expect 100-continue without a body", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
			`POST / HTTP/1.1 host="x" cl=0 fields=["Expect: 100-continue" "Content-Length: 0"] body=""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, func(w *Response, r *Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					fmt.Fprintf(w, "body error: %v", err)
					return
				}
				fmt.Fprintf(w, "%s %s HTTP/1.%d host=%q cl=%d fields=%q body=%q",
					r.Method, r.Target, r.ProtoMinor, r.Host, r.ContentLength, fieldLines(r.Fields), b)
			})
			c := dial(t, ts.addr)
			c.write(tt.req)
			resp, body := c.response("GET")
			if resp.StatusCode != 200 || body != tt.want {
				t.Errorf("got %d %s, want 200 %s", resp.StatusCode, body, tt.want)
			}
		})
	}
}

func TestChunkedRequestBody(t *testing.T) {
	t.Parallel()
	const head = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"extensions and trailer", "5;name=value\r\nhello\r\n6;a;b=\"c d\"\r\n world\r\n0;end\r\nX-Trailer: dropped\r\nX-Other: too\r\n\r\n",
			200, `cl=-1 fields=["Transfer-Encoding: chunked"] body="hello world"`},
		{"no trailer", "5\r\nhello\r\n0\r\n\r\n",
			200, `cl=-1 fields=["Transfer-Encoding: chunked"] body="hello"`},
		{"bad size", "zz\r\nhello\r\n0\r\n\r\n", 400, "body error"},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", 400, "body error"},
		{"chunk longer than its size", "2\r\nhello\r\n0\r\n\r\n", 400, "body error"},
		{"malformed trailer", "5\r\nhello\r\n0\r\nX-T a\r\n\r\n", 400, "body error"},
		{"control byte in trailer", "5\r\nhello\r\n0\r\nX-T: \x00\r\n\r\n", 400, "body error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, func(w *Response, r *Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					w.WriteHeader(http.StatusBadRequest, -1, nil)
					io.WriteString(w, "body error")
					return
				}
				// After the body, so after the trailer section was read
				// into the same Head: the trailer is dropped, and the
				// request's fields are still intact.
				fmt.Fprintf(w, "cl=%d fields=%q body=%q", r.ContentLength, fieldLines(r.Fields), b)
			})
			c := dial(t, ts.addr)
			c.write(head + tt.body)
			resp, body := c.response("POST")
			if resp.StatusCode != tt.status || body != tt.want {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.want)
			}
			// A chunked request is the last on its connection.
			if !resp.Close {
				t.Errorf("got no Connection: close")
			}
			c.closed()
		})
	}
}

func TestKeepAlive(t *testing.T) {
	t.Parallel()
	ts := startServer(t, echo)
	c := dial(t, ts.addr)
	for i, body := range []string{"a", "", "ccc", strings.Repeat("d", 100<<10)} {
		c.write(fmt.Sprintf("POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", i, len(body), body))
		resp, got := c.response("POST")
		if want := fmt.Sprintf("/%d %s", i, body); got != want || resp.Close {
			t.Fatalf("request %d: got %.40q (close %v), want %.40q and the connection kept", i, got, resp.Close, want)
		}
	}
	c.write(get("/last"))
	if _, got := c.response("GET"); got != "/last " {
		t.Errorf("got %q, want %q", got, "/last ")
	}
}

func TestPipelinedRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t, echo)
	c := dial(t, ts.addr)
	c.write(get("/one") + "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + get("/three"))
	for _, want := range []string{"/one ", "/two abc", "/three "} {
		if _, got := c.response("GET"); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestConnectionClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  string
	}{
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n"},
		{"HTTP/1.0 asking for keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"client close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		{"client close in a list", "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n"},
		{"handler close", get("/close")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, func(w *Response, r *Request) {
				if r.Target == "/close" {
					w.SetClose()
				}
				w.WriteHeader(http.StatusOK, 2, nil)
				io.WriteString(w, "ok")
			})
			c := dial(t, ts.addr)
			c.write(tt.req)
			// Read to the end: the response, then EOF.
			raw, err := io.ReadAll(c.br)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			if head, body, _ := strings.Cut(string(raw), "\r\n\r\n"); body != "ok" ||
				strings.Count(head, "\r\nConnection:") != 1 || !strings.Contains(head+"\r\n", "\r\nConnection: close\r\n") {
				t.Errorf("got %q, want one Connection: close and the body \"ok\"", raw)
			}
		})
	}
}

// dateField matches a Date field and captures its value.
var dateField = regexp.MustCompile(`\r\nDate: ([^\r\n]*)\r\n`)

// handlerDate is a Date a handler sets, which the server must keep.
const handlerDate = "Mon, 02 Jan 2006 15:04:05 GMT"

// normalizeDate checks that raw has exactly one valid Date field, and
// replaces its value by "D" unless it is handlerDate.
func normalizeDate(tb testing.TB, raw string) string {
	tb.Helper()
	m := dateField.FindAllStringSubmatchIndex(raw, -1)
	if len(m) != 1 {
		tb.Errorf("got %d Date fields in %q, want 1", len(m), raw)
		return raw
	}
	v := raw[m[0][2]:m[0][3]]
	if _, err := http.ParseTime(v); err != nil {
		tb.Errorf("Date %q: %v", v, err)
	}
	if v == handlerDate {
		return raw
	}
	return raw[:m[0][2]] + "D" + raw[m[0][3]:]
}

// TestResponseFraming checks the exact bytes of responses. Each request
// asks for the connection to close, so that the response ends at EOF.
func TestResponseFraming(t *testing.T) {
	t.Parallel()
	const (
		get11  = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		head11 = "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		get10  = "GET / HTTP/1.0\r\n\r\n"
	)
	hello := func(w *Response, r *Request) { io.WriteString(w, "hello") }
	declared := func(w *Response, r *Request) {
		w.WriteHeader(http.StatusOK, 5, nil)
		io.WriteString(w, "hello")
	}
	tests := []struct {
		name    string
		req     string
		handler HandlerFunc
		want    string
	}{
		{"declared length", get11, declared,
			"HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"},
		{"chunked", get11, func(w *Response, r *Request) {
			io.WriteString(w, "hel")
			w.Write(nil) // no empty chunk: it would end the body
			io.WriteString(w, "lo")
		}, "HTTP/1.1 200 OK\r\nDate: D\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"},
		{"HTTP/1.0 close-delimited", get10, hello,
			"HTTP/1.1 200 OK\r\nDate: D\r\nConnection: close\r\n\r\nhello"},
		{"HTTP/1.0 declared length", get10, declared,
			"HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"},
		{"nothing written", get11, func(w *Response, r *Request) {},
			"HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"HEAD with declared length", head11, declared,
			"HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"},
		{"HEAD without length", head11, hello,
			"HTTP/1.1 200 OK\r\nDate: D\r\nConnection: close\r\n\r\n"},
		{"204", get11, func(w *Response, r *Request) {
			w.WriteHeader(http.StatusNoContent, 5, nil)
			if _, err := io.WriteString(w, "hello"); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic(fmt.Sprintf("Write after 204: got %v, want ErrBodyNotAllowed", err))
			}
		}, "HTTP/1.1 204 No Content\r\nDate: D\r\nConnection: close\r\n\r\n"},
		{"304", get11, func(w *Response, r *Request) {
			w.WriteHeader(http.StatusNotModified, 5, []httpsyntax.Field{{Name: "Etag", Value: `"x"`}})
			io.WriteString(w, "hello")
		}, "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\nDate: D\r\nConnection: close\r\n\r\n"},
		{"framing fields replaced", get11, func(w *Response, r *Request) {
			w.WriteHeader(http.StatusOK, -1, []httpsyntax.Field{
				{Name: "Transfer-Encoding", Value: "gzip"},
				{Name: "Connection", Value: "keep-alive, Upgrade"},
				{Name: "Content-Length", Value: "five"},
			})
			io.WriteString(w, "hello")
		}, "HTTP/1.1 200 OK\r\nDate: D\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"framing fields in any case replaced", get11, func(w *Response, r *Request) {
			w.WriteHeader(http.StatusOK, -1, []httpsyntax.Field{
				{Name: "transfer-encoding", Value: "gzip"},
				{Name: "connection", Value: "keep-alive"},
				{Name: "content-length", Value: "99"},
				{Name: "CONTENT-LENGTH", Value: "5"},
			})
			io.WriteString(w, "hello")
		}, "HTTP/1.1 200 OK\r\nDate: D\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"no response splitting", get11, func(w *Response, r *Request) {
			w.WriteHeader(http.StatusOK, 0, []httpsyntax.Field{
				{Name: "X-A", Value: "a\r\nX-Injected: 1"},
				{Name: "X-A", Value: "kept"},
				{Name: "X-B", Value: "b\nX-Injected: 1"},
				{Name: "X-C", Value: "c\rX-Injected: 1"},
				{Name: "X-C", Value: "nul\x00"},
				{Name: "X-D\r\nX-Injected", Value: "1"},
				{Name: "X E", Value: "1"},
				{Name: "", Value: "1"},
				{Name: "X-T", Value: "a\tb"},
			})
		}, "HTTP/1.1 200 OK\r\nX-A: kept\r\nX-T: a\tb\r\nDate: D\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"handler Date kept", get11, func(w *Response, r *Request) {
			w.WriteHeader(http.StatusOK, 0, []httpsyntax.Field{{Name: "Date", Value: handlerDate}})
		}, "HTTP/1.1 200 OK\r\nDate: " + handlerDate + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, tt.handler)
			c := dial(t, ts.addr)
			c.write(tt.req)
			raw, err := io.ReadAll(c.br)
			if err != nil {
				t.Fatalf("reading response: %v (got %q)", err, raw)
			}
			if got := normalizeDate(t, string(raw)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if logs := ts.log.all(); len(logs) != 0 {
				t.Errorf("got log %q, want none", logs)
			}
		})
	}
}

// TestBodylessResponsesKeepFraming checks that responses without a body
// leave a kept connection in step with the client.
func TestBodylessResponsesKeepFraming(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(w *Response, r *Request) {
		// The length is ignored for 204 and 304, kept for HEAD.
		switch r.Target {
		case "/204":
			w.WriteHeader(http.StatusNoContent, 5, nil)
		case "/304":
			w.WriteHeader(http.StatusNotModified, 5, nil)
		default:
			w.WriteHeader(http.StatusOK, 5, nil)
		}
		io.WriteString(w, "hello")
	})
	c := dial(t, ts.addr)
	c.write("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get("/204") + get("/304") + "HEAD /404 HTTP/1.1\r\nHost: x\r\n\r\n" + get("/"))
	for _, want := range []struct {
		method string
		status int
		body   string
	}{{"HEAD", 200, ""}, {"GET", 204, ""}, {"GET", 304, ""}, {"HEAD", 200, ""}, {"GET", 200, "hello"}} {
		resp, body := c.response(want.method)
		if resp.StatusCode != want.status || body != want.body || resp.Close {
			t.Errorf("%s: got %d %q (close %v), want %d %q", want.method, resp.StatusCode, body, resp.Close, want.status, want.body)
		}
	}
}

// TestShortResponseClosesConnection checks that a body shorter than its
// declared length is never followed by another response.
func TestShortResponseClosesConnection(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	ts := startServer(t, func(w *Response, r *Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK, 10, nil)
		io.WriteString(w, "hello")
	})
	c := dial(t, ts.addr)
	c.write(get("/") + get("/"))
	resp := c.head("GET")
	body, err := io.ReadAll(resp.Body)
	if string(body) != "hello" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %q, %v; want \"hello\", unexpected EOF", body, err)
	}
	c.gone()
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

func TestLongResponseFailsWrite(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 2)
	ts := startServer(t, func(w *Response, r *Request) {
		w.WriteHeader(http.StatusOK, 3, nil)
		_, err := io.WriteString(w, "hello")
		errs <- err
		io.WriteString(w, "abc")
	})
	c := dial(t, ts.addr)
	for range 2 {
		c.write(get("/"))
		if resp, body := c.response("GET"); body != "abc" || resp.Close {
			t.Errorf("got %q (close %v), want \"abc\" and the connection kept", body, resp.Close)
		}
		if err := waitFor(t, errs, "the handler"); !errors.Is(err, http.ErrContentLength) {
			t.Errorf("writing past Content-Length: got %v, want ErrContentLength", err)
		}
	}
}

func TestExpectContinue(t *testing.T) {
	t.Parallel()
	const head = "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"

	t.Run("sent when the handler reads", func(t *testing.T) {
		t.Parallel()
		entered := make(chan struct{}, 2)
		release := make(chan struct{})
		ts := startServer(t, func(w *Response, r *Request) {
			entered <- struct{}{}
			wait(release)
			echo(w, r)
		})
		c := dial(t, ts.addr)
		c.write(head)
		waitFor(t, entered, "the handler")
		// Nothing may arrive before the handler reads; a short wait is the
		// only way to see that nothing does.
		c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if b, err := c.br.Peek(1); !isTimeout(err) {
			t.Fatalf("before the handler read: got %q, %v; want nothing", b, err)
		}
		c.conn.SetReadDeadline(time.Now().Add(testTimeout))
		close(release)
		line := make([]byte, len(continueLine))
		if _, err := io.ReadFull(c.br, line); err != nil || string(line) != continueLine {
			t.Fatalf("got %q, %v; want %q", line, err, continueLine)
		}
		c.write("hello")
		if resp, body := c.response("POST"); resp.StatusCode != 200 || body != "/ hello" || resp.Close {
			t.Errorf("got %d %q (close %v), want 200 \"/ hello\" and the connection kept", resp.StatusCode, body, resp.Close)
		}
		// The kept connection starts the next request afresh.
		c.write(head)
		if _, err := io.ReadFull(c.br, line); err != nil || string(line) != continueLine {
			t.Fatalf("second request: got %q, %v; want %q", line, err, continueLine)
		}
		c.write("world")
		if _, body := c.response("POST"); body != "/ world" {
			t.Errorf("second request: got %q, want \"/ world\"", body)
		}
	})

	t.Run("not sent when the handler answers first", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, func(w *Response, r *Request) {
			w.WriteHeader(http.StatusForbidden, -1, nil)
			io.WriteString(w, "forbidden")
		})
		c := dial(t, ts.addr)
		c.write(head)
		// A 100 Continue would be read here as a response of its own.
		if resp, body := c.response("POST"); resp.StatusCode != 403 || body != "forbidden" {
			t.Errorf("got %d %q, want 403 \"forbidden\"", resp.StatusCode, body)
		}
		c.closed()
	})

	t.Run("not sent to HTTP/1.0", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, echo)
		c := dial(t, ts.addr)
		c.write("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
		if resp, body := c.response("POST"); resp.StatusCode != 200 || body != "/ hello" {
			t.Errorf("got %d %q, want 200 \"/ hello\"", resp.StatusCode, body)
		}
		c.closed()
	})
}

func TestHeadTooLarge(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("a", 16<<10)
	tests := []struct {
		name string
		req  string
		want int
	}{
		{"long field", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 431},
		{"long request line", "GET /" + big + " HTTP/1.1\r\nHost: x\r\n\r\n", 431},
		{"many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 3000) + "\r\n", 431},
		{"within the limit", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big[:900] + "\r\n\r\n", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, okHandler, func(s *Server) { s.MaxHeaderBytes = 1 << 10 })
			c := dial(t, ts.addr)
			c.write(tt.req)
			if resp, body := c.response("GET"); resp.StatusCode != tt.want {
				t.Errorf("got %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want != 200 {
				c.closed()
			}
		})
	}
}

// TestEndlessHead checks that a head that never ends is answered once it
// passes the limit, not buffered until the client stops.
func TestEndlessHead(t *testing.T) {
	t.Parallel()
	ts := startServer(t, okHandler, func(s *Server) { s.MaxHeaderBytes = 1 << 10 })
	c := dial(t, ts.addr)
	go func() {
		io.WriteString(c.conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
		chunk := strings.Repeat("a", 4<<10)
		for range 1 << 10 { // at most 4 MiB, until the server closes
			if _, err := io.WriteString(c.conn, chunk); err != nil {
				return
			}
		}
	}()
	if resp := c.head("GET"); resp.StatusCode != 431 {
		t.Errorf("got %d, want 431", resp.StatusCode)
	}
}

func TestReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprintf("later request %v", later), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, okHandler, func(s *Server) { s.ReadHeaderTimeout = timeout })
			c := dial(t, ts.addr)
			start := time.Now()
			if later {
				c.write(get("/"))
				c.response("GET")
				start = time.Now()
			}
			// A slowloris client: a byte every 20ms, never a whole head.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for range 500 {
					if _, err := io.WriteString(c.conn, "X"); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, err := c.br.Peek(1)
			elapsed := time.Since(start)
			switch {
			case len(b) > 0:
				t.Fatalf("got %q, want the connection closed without an answer", b)
			case isTimeout(err):
				t.Fatalf("connection still open after 2s")
			case err != io.EOF && !isReset(err):
				t.Fatalf("got %v, want EOF", err)
			case elapsed < timeout-50*time.Millisecond:
				t.Fatalf("closed after %v, before the timeout of %v", elapsed, timeout)
			}
		})
	}
}

// TestReadHeaderTimeoutFromFirstByte checks that a later request's head
// gets the whole ReadHeaderTimeout from its first byte, however long the
// connection was idle before, even when IdleTimeout is the same length.
func TestReadHeaderTimeoutFromFirstByte(t *testing.T) {
	t.Parallel()
	ts := startServer(t, okHandler, func(s *Server) {
		s.ReadHeaderTimeout = time.Second
		s.IdleTimeout = time.Second
	})
	c := dial(t, ts.addr)
	c.write(get("/"))
	c.response("GET")
	time.Sleep(500 * time.Millisecond) // idle, within IdleTimeout
	c.write("GET / HTTP/1.1\r\n")
	// The head ends 1.2s after the idle wait began: past IdleTimeout, but
	// 0.7s after its first byte, within ReadHeaderTimeout.
	time.Sleep(700 * time.Millisecond)
	c.write("Host: x\r\n\r\n")
	if resp, body := c.response("GET"); body != "ok" {
		t.Errorf("got %d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	ts := startServer(t, okHandler, func(s *Server) { s.IdleTimeout = timeout })
	c := dial(t, ts.addr)
	c.write(get("/"))
	c.response("GET")
	start := time.Now()
	c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.closed()
	if elapsed := time.Since(start); elapsed < timeout-50*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout of %v", elapsed, timeout)
	}
}

// TestZeroTimeoutsMeanNone checks that a Server with zero timeouts serves,
// as net/http's does, instead of timing every connection out at once.
func TestZeroTimeoutsMeanNone(t *testing.T) {
	t.Parallel()
	ts := startServer(t, okHandler, func(s *Server) {
		s.ReadHeaderTimeout = 0
		s.IdleTimeout = 0
	})
	c := dial(t, ts.addr)
	for i := range 2 {
		if i > 0 {
			time.Sleep(100 * time.Millisecond) // idle, longer than a sweep
		}
		c.write(get("/"))
		if _, body := c.response("GET"); body != "ok" {
			t.Fatalf("request %d: got %q, want \"ok\"", i, body)
		}
	}
}

// TestUnreadBody checks that a response to a request whose body is left
// unread arrives whole, followed by a clean close: no reset, and no part of
// the body taken for a request.
func TestUnreadBody(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	ts := startServer(t, func(w *Response, r *Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusRequestEntityTooLarge, 9, nil)
		io.WriteString(w, "too large")
	})
	c := dial(t, ts.addr)
	// The body looks like requests, and fits what the server drains before
	// it closes.
	body := strings.Repeat(get("/smuggled"), (48<<10)/len(get("/smuggled")))
	go io.WriteString(c.conn, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	resp, got := c.response("POST")
	if resp.StatusCode != 413 || got != "too large" {
		t.Errorf("got %d %q, want 413 \"too large\"", resp.StatusCode, got)
	}
	// The handler never read the body: the client is told not to reuse
	// the connection, which closes.
	if !resp.Close {
		t.Error("response to a request whose body is left unread lacks Connection: close")
	}
	c.closed()
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

// TestAdmit: a refused connection is answered 403 at once, before its
// client sends anything, and closed; an admitted one is served, and Admit
// sees the connection the handler's RemoteAddr is about. Admit here
// refuses every second connection, and the test makes one at a time.
func TestAdmit(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	var admittedAddr atomic.Value
	ts := startServer(t, func(w *Response, r *Request) {
		io.WriteString(w, r.RemoteAddr)
	}, func(s *Server) {
		s.ReadHeaderTimeout = time.Minute // a refusal must not wait for it
		s.Admit = func(c net.Conn) bool {
			admit := n.Add(1)%2 == 1
			if admit {
				admittedAddr.Store(c.RemoteAddr().String())
			}
			return admit
		}
	})
	for i := range 4 {
		c := dial(t, ts.addr)
		if i%2 == 0 {
			local := c.conn.LocalAddr().String()
			c.write(get("/"))
			if _, body := c.response("GET"); body != local || admittedAddr.Load() != local {
				t.Errorf("admitted: got %q (Admit saw %v), want %q", body, admittedAddr.Load(), local)
			}
			continue
		}
		start := time.Now()
		resp, _ := c.response("GET") // nothing written: the answer comes unasked
		if resp.StatusCode != http.StatusForbidden || !resp.Close {
			t.Errorf("refused: got %d (close %v), want 403 and close", resp.StatusCode, resp.Close)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("refused: answered after %v, want at once", d)
		}
		c.closed()
	}
	if log := strings.Join(ts.log.all(), "\n"); !strings.Contains(log, "403 client not allowed") {
		t.Errorf("log %q does not name the refusal", log)
	}
}

func TestClientGoneCancelsRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  string
	}{
		{"no body", get("/")},
		{"after reading the body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
		{"after reading a chunked body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entered := make(chan struct{}, 1)
			causes := make(chan error, 1)
			ts := startServer(t, func(w *Response, r *Request) {
				if _, err := io.ReadAll(r.Body); err != nil {
					causes <- fmt.Errorf("reading the body: %w", err)
					return
				}
				entered <- struct{}{}
				select {
				case <-r.Context().Done():
					causes <- context.Cause(r.Context())
				case <-time.After(testTimeout):
					causes <- errors.New("never cancelled")
				}
			})
			c := dial(t, ts.addr)
			c.write(tt.req)
			waitFor(t, entered, "the handler")
			c.conn.Close()
			select {
			case err := <-causes:
				if !errors.Is(err, ErrClientGone) {
					t.Errorf("got cause %v, want ErrClientGone", err)
				}
			case <-time.After(time.Second):
				t.Errorf("request not cancelled within 1s of the client closing")
			}
		})
	}
}

// connProbe sees what a server does with its connections.
type connProbe struct {
	// watchStops counts deadlines in the past: unwatch stopping a watcher.
	watchStops atomic.Int64
	mu         sync.Mutex
	readStart  chan struct{} // closed when the next Read begins
	afterRead  func(n int)
}

// nextRead returns a channel closed when a Read next begins. While a
// handler without a request body to read runs, that is the watcher's.
func (p *connProbe) nextRead() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readStart = make(chan struct{})
	return p.readStart
}

func (p *connProbe) onRead(f func(n int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.afterRead = f
}

type probeListener struct {
	net.Listener
	probe *connProbe
}

func (l probeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &probeConn{TCPConn: c.(*net.TCPConn), probe: l.probe}, nil
}

// probeConn keeps *net.TCPConn's CloseWrite, which the server uses.
type probeConn struct {
	*net.TCPConn
	probe *connProbe
}

func (c *probeConn) Read(p []byte) (int, error) {
	c.probe.mu.Lock()
	if c.probe.readStart != nil {
		close(c.probe.readStart)
		c.probe.readStart = nil
	}
	f := c.probe.afterRead
	c.probe.mu.Unlock()
	n, err := c.TCPConn.Read(p)
	if f != nil {
		f(n)
	}
	return n, err
}

func (c *probeConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Unix(1e9, 0)) {
		c.probe.watchStops.Add(1)
	}
	return c.TCPConn.SetReadDeadline(t)
}

// TestFastRequestsAreNotWatched checks that fast requests do not start the
// goroutine that watches for the client leaving, and that a slow one does
// (so the probe can see it).
func TestFastRequestsAreNotWatched(t *testing.T) {
	t.Parallel()
	probe := &connProbe{}
	ts := serveOn(t, probeListener{listen(t), probe}, func(w *Response, r *Request) {
		if r.Target == "/slow" && !wait(probe.nextRead()) {
			io.WriteString(w, "not watched")
			return
		}
		io.WriteString(w, "ok")
	})
	c := dial(t, ts.addr)
	for range 200 {
		c.write(get("/"))
		if _, body := c.response("GET"); body != "ok" {
			t.Fatalf("got %q, want \"ok\"", body)
		}
	}
	// A request may be slow now and then on a busy machine.
	fast := probe.watchStops.Load()
	if fast > 20 {
		t.Errorf("200 fast requests started the watcher %d times", fast)
	}
	c.write(get("/slow"))
	if _, body := c.response("GET"); body != "ok" || probe.watchStops.Load() == fast {
		t.Errorf("got %q, %d watcher stops; want a slow request watched", body, probe.watchStops.Load()-fast)
	}
}

// TestPipelinedInputWhileWatching checks that a request that arrives while
// the watcher reads the connection is kept and served next.
func TestPipelinedInputWhileWatching(t *testing.T) {
	t.Parallel()
	probe := &connProbe{}
	entered := make(chan struct{})
	watcherRead := make(chan struct{})
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	ts := serveOn(t, probeListener{listen(t), probe}, func(w *Response, r *Request) {
		if r.Target != "/slow" {
			io.WriteString(w, "fast")
			return
		}
		// From here until this handler returns, only the watcher reads.
		var once sync.Once
		probe.onRead(func(n int) {
			if n > 0 {
				once.Do(func() { close(watcherRead) })
			}
		})
		close(entered)
		wait(release)
		probe.onRead(nil)
		ctxErr <- r.Context().Err()
		io.WriteString(w, "slow")
	})
	c := dial(t, ts.addr)
	c.write(get("/slow"))
	waitFor(t, entered, "the handler")
	c.write(get("/fast"))
	waitFor(t, watcherRead, "the watcher to read the pipelined request")
	close(release)
	for _, want := range []string{"slow", "fast"} {
		if _, body := c.response("GET"); body != want {
			t.Errorf("got %q, want %q", body, want)
		}
	}
	if err := waitFor(t, ctxErr, "the handler"); err != nil {
		t.Errorf("pipelined input cancelled the request: %v", err)
	}
}

func TestPanics(t *testing.T) {
	t.Parallel()
	probe := &connProbe{}
	ts := serveOn(t, probeListener{listen(t), probe}, func(w *Response, r *Request) {
		switch r.Target {
		case "/abort":
			io.WriteString(w, "partial")
			w.Flush()
			panic(http.ErrAbortHandler)
		case "/boom":
			panic("boom")
		case "/boom-after-flush":
			io.WriteString(w, "partial")
			w.Flush()
			panic("boom after flush")
		case "/boom-watched":
			if !wait(probe.nextRead()) {
				panic("not watched")
			}
			panic("boom while watched")
		}
		io.WriteString(w, "ok")
	})
	// A kept connection, opened before the panics.
	other := dial(t, ts.addr)
	other.write(get("/"))
	other.response("GET")

	t.Run("ErrAbortHandler", func(t *testing.T) {
		c := dial(t, ts.addr)
		c.write(get("/abort"))
		resp := c.head("GET")
		body, err := io.ReadAll(resp.Body)
		if string(body) != "partial" || err == nil {
			t.Errorf("got %q, %v; want \"partial\" and an error", body, err)
		}
		c.gone()
		if logs := ts.log.all(); len(logs) != 0 {
			t.Errorf("got log %q, want none", logs)
		}
	})
	for _, tt := range []struct{ path, value string }{
		{"/boom", "boom"},
		{"/boom-after-flush", "boom after flush"},
		{"/boom-watched", "boom while watched"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			c := dial(t, ts.addr)
			c.write(get(tt.path))
			got, _ := io.ReadAll(c.br)
			if tt.path == "/boom-after-flush" {
				if !bytes.Contains(got, []byte("partial")) || bytes.HasSuffix(got, []byte("0\r\n\r\n")) {
					t.Errorf("got %q, want a truncated chunked body", got)
				}
			} else if len(got) != 0 {
				t.Errorf("got %q, want nothing", got)
			}
			logs := ts.log.all()
			if len(logs) == 0 || !strings.Contains(logs[len(logs)-1], "panic serving") || !strings.Contains(logs[len(logs)-1], tt.value) {
				t.Errorf("got log %q, want the panic %q", logs, tt.value)
			}
		})
	}

	other.write(get("/"))
	if _, body := other.response("GET"); body != "ok" {
		t.Errorf("other connection: got %q, want \"ok\"", body)
	}
}

// TestNilLogf checks that a Server without Logf survives what it would log.
func TestNilLogf(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(w *Response, r *Request) {
		if r.Target == "/boom" {
			panic("boom")
		}
		io.WriteString(w, "ok")
	}, func(s *Server) { s.Logf = nil })
	c := dial(t, ts.addr)
	c.write("hello\r\n\r\n")
	if resp, _ := c.response("GET"); resp.StatusCode != 400 {
		t.Errorf("got %d, want 400", resp.StatusCode)
	}
	c = dial(t, ts.addr)
	c.write(get("/boom"))
	c.gone()
	c = dial(t, ts.addr)
	c.write(get("/"))
	if _, body := c.response("GET"); body != "ok" {
		t.Errorf("got %q, want \"ok\"", body)
	}
}

// streamHandler writes "first", then "second" once release is closed.
func streamHandler(entered chan<- struct{}, release <-chan struct{}) HandlerFunc {
	return func(w *Response, r *Request) {
		if r.Target != "/stream" {
			io.WriteString(w, "ok")
			return
		}
		io.WriteString(w, "first")
		w.Flush()
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(testTimeout):
		}
		io.WriteString(w, "second")
	}
}

// startStream opens a kept idle connection and a streaming one, and reads
// the stream's first part.
func startStream(t *testing.T, ts *testServer, entered <-chan struct{}) (idle *client, stream *client, body io.Reader) {
	t.Helper()
	idle = dial(t, ts.addr)
	idle.write(get("/"))
	idle.response("GET")
	stream = dial(t, ts.addr)
	stream.write(get("/stream"))
	resp := stream.head("GET")
	first := make([]byte, len("first"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
		t.Fatalf("got %q, %v; want \"first\"", first, err)
	}
	waitFor(t, entered, "the handler")
	return idle, stream, resp.Body
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	ts := startServer(t, streamHandler(entered, release))
	idle, stream, body := startStream(t, ts, entered)

	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	idle.closed()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a response was streaming", err)
	default:
	}
	if c, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted after Shutdown")
	}
	close(release)
	if rest, err := io.ReadAll(body); err != nil || string(rest) != "second" {
		t.Errorf("got %q, %v; want the stream's end, \"second\"", rest, err)
	}
	stream.closed()
	if err := waitFor(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
	if err := ts.serveResult(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: got %v, want ErrServerClosed", err)
	}
}

func TestShutdownContextDone(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	ts := startServer(t, streamHandler(entered, nil))
	_, stream, body := startStream(t, ts, entered)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: got %v, want context.Canceled", err)
	}
	closeCutsStream(t, ts, stream, body)
}

// closeCutsStream closes ts and checks that the stream was cut, not ended
// cleanly, and that Serve returned.
func closeCutsStream(t *testing.T, ts *testServer, stream *client, body io.Reader) {
	t.Helper()
	ts.Close()
	if rest, err := io.ReadAll(body); err == nil {
		t.Errorf("got %q and a clean end, want the stream cut", rest)
	}
	stream.gone()
	if err := ts.serveResult(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: got %v, want ErrServerClosed", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	ts := startServer(t, streamHandler(entered, nil))
	idle, stream, body := startStream(t, ts, entered)
	closeCutsStream(t, ts, stream, body)
	idle.closed()
	if err := ts.Serve(listen(t)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close: got %v, want ErrServerClosed", err)
	}
}

// TestCloseLeavesNoGoroutines runs alone: it counts every goroutine.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	entered := make(chan struct{}, 1)
	ln := listen(t)
	s := &Server{Handler: streamHandler(entered, nil), ReadHeaderTimeout: testTimeout, IdleTimeout: testTimeout, MaxHeaderBytes: 8 << 10, Logf: (&testLog{}).logf}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	ts := &testServer{Server: s, addr: ln.Addr().String()}

	idle, stream, _ := startStream(t, ts, entered)
	half := dial(t, ts.addr)
	half.write("GET / HTTP/1.1\r\n")
	s.Close()
	if err := waitFor(t, served, "Serve"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: got %v, want ErrServerClosed", err)
	}
	for _, c := range []*client{idle, stream, half} {
		c.gone()
		c.conn.Close()
	}
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var stacks bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, stacks.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzReadRequest sends arbitrary bytes on a connection and checks that the
// server answers with nothing or with well-formed HTTP/1.1 responses, never
// panics, and hands its handler only requests with a valid Host and a
// Content-Length that matches the body.
func FuzzReadRequest(f *testing.F) {
	for _, seed := range []string{
		get("/"),
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: t\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get("/admin"),
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + get("/admin"),
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		get("/one") + "HEAD /two HTTP/1.1\r\nHost: x\r\n\r\n" + get("/three"),
		"GET / HTTP/1.0\r\n\r\n" + get("/after"),
		"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\nHost: [::1]:80\n\n",
		"\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\nHOST: y\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999\r\n\r\nshort",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<10) + "\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}

	var mu sync.Mutex
	var violations []string
	violate := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, fmt.Sprintf(format, args...))
	}
	parseInt := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return -2
		}
		return n
	}
	ts := startServer(f, func(w *Response, r *Request) {
		if !httpsyntax.ValidHost(r.Host) && (r.Host != "" || r.ProtoMinor != 0) {
			violate("handler got Host %q in HTTP/1.%d", r.Host, r.ProtoMinor)
		}
		// The framing fields stay in Fields, and must agree with
		// ContentLength: one "chunked" and no Content-Length for -1, one
		// Content-Length of that value or none for 0, and no
		// Transfer-Encoding otherwise.
		te, nte := httpsyntax.Lookup(r.Fields, "Transfer-Encoding")
		cl, ncl := httpsyntax.Lookup(r.Fields, "Content-Length")
		chunked := r.ContentLength == -1
		switch {
		case chunked && (nte != 1 || !strings.EqualFold(te, "chunked") || ncl != 0 || r.ProtoMinor != 1),
			!chunked && (r.ContentLength < 0 || nte != 0 || ncl > 1),
			!chunked && ncl == 1 && (strings.Trim(cl, "0123456789") != "" || parseInt(cl) != r.ContentLength),
			!chunked && ncl == 0 && r.ContentLength != 0:
			violate("handler got Content-Length %d with fields %q", r.ContentLength, fieldLines(r.Fields))
		}
		if _, n := httpsyntax.Lookup(r.Fields, "Host"); n != 0 {
			violate("handler got a Host field in %q", fieldLines(r.Fields))
		}
		for _, f := range r.Fields {
			if !httpsyntax.IsToken(f.Name) || !httpsyntax.ValidFieldValue(f.Value) {
				violate("handler got field %q: %q", f.Name, f.Value)
			}
		}
		if r.ContentLength == 0 && r.Body != http.NoBody {
			violate("handler got a body of length 0 other than http.NoBody")
		}
		body, err := io.ReadAll(r.Body)
		if err == nil && !chunked && int64(len(body)) != r.ContentLength {
			violate("handler read %d body bytes, Content-Length %d", len(body), r.ContentLength)
		}
		if r.Method != http.MethodHead {
			io.WriteString(w, "ok")
		}
	}, func(s *Server) {
		s.MaxHeaderBytes = 1 << 10
		s.Logf = func(format string, args ...any) {
			if strings.HasPrefix(format, "panic") {
				violate(format, args...)
			}
		}
	})

	// Each execution's connection ends in TIME_WAIT on the client's side,
	// which half-closes first, for a minute: a long run would use up the
	// ephemeral ports of one address. Spread the clients over loopback
	// source addresses where the system has them (Linux: all of 127/8).
	spread := false
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		ln.Close()
		spread = true
	}
	var execs atomic.Uint32
	f.Fuzz(func(t *testing.T, in []byte) {
		mu.Lock()
		violations = nil
		mu.Unlock()
		d := net.Dialer{Timeout: time.Second}
		if spread {
			n := execs.Add(1)
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(n/250%250), byte(n%250+2))}
		}
		conn, err := d.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		go func() {
			conn.Write(in)
			conn.(*net.TCPConn).CloseWrite() // the server sees EOF instead of waiting
		}()
		br := bufio.NewReader(conn)
		allowed := []int{100, 200, 400, 417, 431, 501, 505}
		for {
			if _, err := br.Peek(1); err != nil {
				if err != io.EOF && !isReset(err) {
					t.Fatalf("server neither answered nor closed: %v", err)
				}
				break
			}
			resp, err := http.ReadResponse(br, nil)
			if isReset(err) {
				break
			}
			if err != nil {
				t.Fatalf("malformed response: %v", err)
			}
			if resp.Proto != "HTTP/1.1" || !slices.Contains(allowed, resp.StatusCode) {
				t.Fatalf("got %s %s, want HTTP/1.1 and a status in %v", resp.Proto, resp.Status, allowed)
			}
			if _, err := io.Copy(io.Discard, resp.Body); isReset(err) {
				break
			} else if err != nil {
				t.Fatalf("reading a %d response's body: %v", resp.StatusCode, err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(violations) > 0 {
			t.Fatalf("%q", violations)
		}
	})
}

// TestCloseCancelsRequests: a handler waiting on its request's context,
// as the proxy waits for an upstream answer, is released by Close at once,
// even before a sweeper tick has started watching its client.
func TestCloseCancelsRequests(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	causes := make(chan error, 1)
	ts := startServer(t, func(w *Response, r *Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			causes <- context.Cause(r.Context())
		case <-time.After(testTimeout):
			causes <- errors.New("not cancelled")
		}
	})
	c := dial(t, ts.addr)
	c.write(get("/"))
	waitFor(t, entered, "the handler")
	start := time.Now()
	ts.Close()
	if err := waitFor(t, causes, "the handler's release"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("request context: got %v, want ErrServerClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("handler released %v after Close, want at once", d)
	}
}
