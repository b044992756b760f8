package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/dump"
	"github.com/openai/codex-responses-api-proxy/go/internal/server"
	"github.com/openai/codex-responses-api-proxy/go/internal/upstream"
)

const testAuth = "Authorization: Bearer sk-proxy-test\r\n"

// harness is a proxy in this process between a test client and a fake
// upstream, so goroutines and descriptors can be counted.
type harness struct {
	addr     string // the proxy's host:port
	upstream *httptest.Server
	client   *upstream.Client
	srv      *server.Server
	hits     atomic.Int64
	logs     *logSink
}

type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newHarness(t testing.TB, cfg Config, upstreamHandler http.HandlerFunc) *harness {
	t.Helper()
	h := &harness{logs: &logSink{}}
	h.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		upstreamHandler(w, r)
	}))
	u, err := url.Parse(h.upstream.URL + "/v1/responses")
	if err != nil {
		t.Fatal(err)
	}
	h.client, err = upstream.New(upstream.Config{URL: u, Auth: []byte(testAuth)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstream = h.client
	cfg.Logf = h.logs.logf
	handler := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	// The proxy's own server, as in production.
	srv := &server.Server{
		Handler:           handler,
		Admit:             handler.Admit,
		ReadHeaderTimeout: 2 * time.Second,
		IdleTimeout:       10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		Logf:              h.logs.logf,
	}
	h.srv = srv
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
		h.upstream.CloseClientConnections()
		h.upstream.Close()
		h.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("proxy log:\n%s", h.logs)
		}
	})
	return h
}

func (h *harness) url() string { return "http://" + h.addr + "/v1/responses" }

// raw sends one raw request on a new connection and returns the response.
func (h *harness) raw(t *testing.T, req string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp
}

// sse streams n events, flushing each.
func sse(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
	}
}

func TestForwardAndStatuses(t *testing.T) {
	h := newHarness(t, Config{MaxBodyBytes: 1 << 10}, func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer sk-proxy-test" {
			t.Errorf("upstream Authorization: got %q, want %q", got, "Bearer sk-proxy-test")
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Request-Id", "req_123")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Write(body)
	})
	host := "Host: 127.0.0.1\r\n"
	tests := []struct {
		name     string
		req      string
		want     int
		wantBody string
		hits     int64
		close    bool
	}{
		{name: "forwarded", req: "POST /v1/responses HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\n{}", want: 200, wantBody: "{}", hits: 1},
		{name: "chunked forwarded, connection closed by the server", req: "POST /v1/responses HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", want: 200, wantBody: "ok", hits: 1, close: true},
		{name: "GET forbidden", req: "GET /v1/responses HTTP/1.1\r\n" + host + "\r\n", want: 403, close: true},
		{name: "declared body too large", req: "POST /v1/responses HTTP/1.1\r\n" + host + "Content-Length: 2000\r\n\r\n", want: 413, close: true},
		{name: "too many headers", req: "POST /v1/responses HTTP/1.1\r\n" + host + strings.Repeat("X-A: 1\r\n", 101) + "Content-Length: 0\r\n\r\n", want: 431, close: true},
		{name: "missing host", req: "POST /v1/responses HTTP/1.1\r\nContent-Length: 0\r\n\r\n", want: 400},
		{name: "duplicate host", req: "POST /v1/responses HTTP/1.1\r\n" + host + host + "Content-Length: 0\r\n\r\n", want: 400},
		{name: "conflicting content-length", req: "POST /v1/responses HTTP/1.1\r\n" + host + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", want: 400},
		{name: "malformed content-length", req: "POST /v1/responses HTTP/1.1\r\n" + host + "Content-Length: 2x\r\n\r\n{}", want: 400},
		{name: "unsupported transfer-encoding", req: "POST /v1/responses HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", want: 501},
		// Last: its upstream request starts before the limit is hit, and
		// may be counted after the next case has begun.
		{name: "chunked body too large", req: "POST /v1/responses HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("a", 2048) + "\r\n0\r\n\r\n", want: 413, hits: -1, close: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.hits.Load()
			resp := h.raw(t, tt.req)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("got body %q, want %q", body, tt.wantBody)
			}
			if got := h.hits.Load() - before; tt.hits >= 0 && got != tt.hits {
				t.Errorf("upstream hits: got %d, want %d", got, tt.hits)
			}
			if tt.close && !resp.Close {
				t.Errorf("connection kept open, want Connection: close")
			}
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("Access-Control-Allow-Origin reached the client: %q", v)
			}
		})
	}
}

// TestFieldsThroughProxy sends fields in mixed case: the upstream gets the
// kept ones and our key only, and the dump lists exactly what was sent
// upstream, in the client's order and case.
func TestFieldsThroughProxy(t *testing.T) {
	dumpLogs := &logSink{}
	dir := t.TempDir()
	d, err := dump.New(dir, dumpLogs.logf)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{Dumper: d}, func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Values("Authorization"); !slices.Equal(got, []string{"Bearer sk-proxy-test"}) {
			t.Errorf("upstream Authorization: got %q, want only ours", got)
		}
		for _, name := range []string{"X-Foo", "Proxy-Authorization", "Keep-Alive"} {
			if v, ok := r.Header[name]; ok {
				t.Errorf("upstream got %s: %q, want it dropped", name, v)
			}
		}
		if got := r.Header.Get("X-Codex-Turn-Metadata"); got != "{}" {
			t.Errorf("upstream X-Codex-Turn-Metadata: got %q, want %q", got, "{}")
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Set-Cookie", "c=d")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		io.WriteString(w, "{}")
	})
	resp := h.raw(t, "POST /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\n"+
		"x-codex-turn-metadata: {}\r\nauthorization: Bearer client-supplied\r\nCONNECTION: x-foo\r\n"+
		"X-FOO: 1\r\nAccept: text/event-stream\r\nproxy-authorization: Basic x\r\nkeep-alive: timeout=5\r\n"+
		"content-type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "{}" {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "{}")
	}
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("Access-Control-Allow-Origin reached the client: %q", v)
	}

	// The response file is written before the access line is logged.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(h.logs.String(), "POST /v1/responses 200"); {
		if time.Now().After(deadline) {
			t.Fatal("no access line for the request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	type header struct{ Name, Value string }
	read := func(kind string) (file struct{ Headers []header }) {
		t.Helper()
		paths, _ := filepath.Glob(filepath.Join(dir, "000001-*-"+kind+".json"))
		if len(paths) != 1 {
			t.Fatalf("got %s files %q, want one", kind, paths)
		}
		data, err := os.ReadFile(paths[0])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "sk-proxy-test") || strings.Contains(string(data), "client-supplied") ||
			strings.Contains(string(data), "c=d") {
			t.Errorf("%s dump holds a credential:\n%s", kind, data)
		}
		if err := json.Unmarshal(data, &file); err != nil {
			t.Fatalf("%s: %v", paths[0], err)
		}
		return file
	}
	want := []header{
		{"x-codex-turn-metadata", "{}"},
		{"Accept", "text/event-stream"},
		{"content-type", "application/json"},
	}
	if got := read("request").Headers; !slices.Equal(got, want) {
		t.Errorf("request dump headers: got %q, want %q", got, want)
	}
	if got := read("response").Headers; !slices.Contains(got, header{"Set-Cookie", "[REDACTED]"}) {
		t.Errorf("response dump headers: got %q, want Set-Cookie redacted", got)
	}
	if s := dumpLogs.String(); s != "" {
		t.Errorf("dump failures logged: %q", s)
	}
}

func TestUpstreamDown(t *testing.T) {
	h := newHarness(t, Config{}, sse(1))
	h.upstream.Close()
	wantBadGateway(t, h)
}

// wantBadGateway posts a request and checks it gets a 502 with a JSON error.
func wantBadGateway(t *testing.T, h *harness) {
	t.Helper()
	resp, err := http.Post(h.url(), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), `"error"`) {
		t.Errorf("got %d %q, want 502 with a JSON error", resp.StatusCode, body)
	}
}

func TestUpstreamSwitchesProtocols(t *testing.T) {
	h := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		w.WriteHeader(http.StatusSwitchingProtocols)
	})
	wantBadGateway(t, h)
}

// baseline records goroutines and (on Linux) open descriptors, and later
// waits for both to come back to it after the proxy's connections are gone.
type baseline struct{ goroutines, fds int }

func takeBaseline() baseline {
	return baseline{runtime.NumGoroutine(), countFDs()}
}

// countFDs counts open descriptors on Linux only, as netlimit's openFDs does
// (under wine, /proc/self/fd is wine's descriptor cache).
func countFDs() int {
	if runtime.GOOS != "linux" {
		return -1
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

func (b baseline) wait(t *testing.T, h *harness) {
	t.Helper()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.client.CloseIdleConnections()
		g, fds := runtime.NumGoroutine(), countFDs()
		if g <= b.goroutines && fds <= b.fds {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines %d (baseline %d), fds %d (baseline %d)\n%s", g, b.goroutines, fds, b.fds, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// served checks the proxy still answers a normal streamed request.
func served(t *testing.T, h *harness) {
	t.Helper()
	resp, err := http.Post(h.url(), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("proxy no longer serves: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("proxy no longer serves: %d %q %v", resp.StatusCode, body, err)
	}
}

func TestFaults(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	upstreamCancelled := make(chan struct{}, 16)
	h := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Fault") {
		case "reset":
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
			conn.Close()
		case "stall":
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				upstreamCancelled <- struct{}{}
			case <-release:
			}
		case "body":
			_, err := io.Copy(io.Discard, r.Body)
			if err == nil {
				t.Errorf("upstream received a complete body from a client that hung up mid-body")
			}
			upstreamCancelled <- struct{}{}
		default:
			sse(3)(w, r)
		}
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	served(t, h) // warm pools before the baseline
	base := takeBaseline()

	t.Run("upstream resets mid-stream", func(t *testing.T) {
		req, _ := http.NewRequest("POST", h.url(), strings.NewReader("{}"))
		req.Header.Set("X-Fault", "reset")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("stream ended cleanly with %q, want it aborted", body)
		}
		if !strings.HasPrefix(string(body), "data: first\n\n") {
			t.Errorf("got %q, want the first event before the abort", body)
		}
		served(t, h)
	})

	t.Run("upstream stalls, client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", h.url(), strings.NewReader("{}"))
		req.Header.Set("X-Fault", "stall")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: first\n" {
			t.Fatalf("got %q %v, want the first event", line, err)
		}
		cancel()
		resp.Body.Close()
		select {
		case <-upstreamCancelled:
		case <-time.After(3 * time.Second):
			t.Fatal("upstream request not cancelled after the client left")
		}
		served(t, h)
	})

	t.Run("client hangs up mid-body", func(t *testing.T) {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fault: body\r\nContent-Length: 100000\r\n\r\n%s", strings.Repeat("x", 1000))
		time.Sleep(100 * time.Millisecond)
		c.Close()
		select {
		case <-upstreamCancelled:
		case <-time.After(3 * time.Second):
			t.Fatal("upstream never saw the body end")
		}
		served(t, h)
	})

	t.Run("client hangs up mid-stream", func(t *testing.T) {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fault: stall\r\nContent-Length: 0\r\n\r\n")
		br := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := http.ReadResponse(br, nil); err != nil {
			t.Fatal(err)
		}
		c.Close()
		select {
		case <-upstreamCancelled:
		case <-time.After(3 * time.Second):
			t.Fatal("upstream request not cancelled after the client hung up")
		}
		served(t, h)
	})

	t.Run("1000 connections opened and dropped", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
				if err != nil {
					return // a full accept queue may refuse some; the point is the proxy survives
				}
				if i%2 == 0 {
					io.WriteString(c, "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")
				}
				c.Close()
			}()
		}
		wg.Wait()
		served(t, h)
	})

	base.wait(t, h)
}

func TestShutdownRoute(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, Config{Gate: Gate{Shutdown: true}, Shutdown: func() { calls.Add(1) }}, sse(1))
	for range 2 {
		resp := h.raw(t, "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		if resp.StatusCode != 200 || resp.ContentLength != 0 {
			t.Errorf("got %d (length %d), want a complete empty 200", resp.StatusCode, resp.ContentLength)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("Shutdown called %d times, want 1", got)
	}
	if got := h.hits.Load(); got != 0 {
		t.Errorf("upstream hits: got %d, want 0", got)
	}
}

func TestPeerRefused(t *testing.T) {
	h := newHarness(t, Config{AllowPeer: func(net.Conn) (bool, error) { return false, nil }}, sse(1))
	resp := h.raw(t, "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
	if resp.StatusCode != 403 {
		t.Errorf("got %d, want 403", resp.StatusCode)
	}
	if got := h.hits.Load(); got != 0 {
		t.Errorf("upstream hits: got %d, want 0", got)
	}
}

// BenchmarkForward is one keep-alive request after another through the
// proxy's server, handler and upstream client to a loopback upstream, as an
// agent's small JSON turns go.
func BenchmarkForward(b *testing.B) {
	h := newHarness(b, Config{}, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_1")
		io.WriteString(w, `{"id":"resp_1","object":"response","status":"completed"}`)
	})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const body = `{"model":"gpt-5","input":"ping","stream":false}`
	req := []byte("POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: codex_exec/0.169.0\r\n" +
		"Content-Type: application/json\r\nAccept: application/json\r\nOriginator: codex_exec\r\n" +
		"Session-Id: 0199a7c1-5d6e-7f00-8000-000000000001\r\nContent-Length: 47\r\n\r\n" + body)
	br := bufio.NewReader(c)
	b.ReportAllocs()
	for b.Loop() {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("got %d", resp.StatusCode)
		}
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "/v1/responses", want: "/v1/responses"},
		{name: "empty", in: "", want: ""},
		{name: "space", in: "a b", want: `"a b"`},
		{name: "quote", in: `a"b`, want: `"a\"b"`},
		{name: "backslash", in: `a\b`, want: `"a\\b"`},
		{name: "newline", in: "a\nb", want: `"a\nb"`},
		{name: "non-ASCII", in: "é", want: `"é"`},
		{name: "long", in: long, want: long[:128] + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// chunkErrors are chunked bodies whose framing breaks, each after a valid
// prefix (see TestChunkedFramingErrors); status is the answer to each.
var chunkErrors = []struct {
	name   string
	body   string
	status int
}{
	{"size not hex", "zz\r\nhello\r\n0\r\n\r\n", 400},
	{"negative size", "-5\r\nhello\r\n0\r\n\r\n", 400},
	{"size with 0x", "0x5\r\nhello\r\n0\r\n\r\n", 400},
	{"size overflows 64 bits", "10000000000000000\r\nhello\r\n0\r\n\r\n", 400},
	{"empty size", "\r\nhello\r\n0\r\n\r\n", 400},
	{"bare LF after the size", "5\nhello\r\n0\r\n\r\n", 400},
	{"data longer than its size", "3\r\nhello\r\n0\r\n\r\n", 400},
	{"data shorter than its size, then the end", "5\r\nhel", 400},
	{"no CRLF after the data", "5\r\nhelloXY0\r\n\r\n", 400},
	{"bare LF after the data", "5\r\nhello\n0\r\n\r\n", 400},
	{"no last chunk", "5\r\nhello\r\n", 400},
	{"malformed trailer field", "5\r\nhello\r\n0\r\nX-T a\r\n\r\n", 400},
	{"bare LF in the trailer section", "5\r\nhello\r\n0\r\nX-T: 1\n\r\n", 400},
	{"trailer section not ended", "5\r\nhello\r\n0\r\nX-T: 1\r\n", 400},
	{"over the body limit", "800\r\n" + strings.Repeat("a", 0x800) + "\r\n0\r\n\r\n", 413},
}

// sendHalfClosed sends req on a new connection, half-closes it so the
// proxy sees the end of its input, and returns the response.
func (h *harness) sendHalfClosed(t *testing.T, req string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		io.WriteString(c, req)
		c.(*net.TCPConn).CloseWrite()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp
}

// TestChunkedFramingErrors: a chunked body that ends within the inline
// window (32 KiB) is read and checked whole before the upstream is
// contacted, so each framing error is answered with nothing forwarded; past
// the window the body streams, and the same error aborts the upstream
// request, which never sees a complete body (issue 12).
func TestChunkedFramingErrors(t *testing.T) {
	const head = "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	t.Run("within the window", func(t *testing.T) {
		h := newHarness(t, Config{MaxBodyBytes: 1 << 10}, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
		})
		for _, tt := range chunkErrors {
			t.Run(tt.name, func(t *testing.T) {
				resp := h.sendHalfClosed(t, head+"2\r\n{}\r\n"+tt.body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || !resp.Close {
					t.Errorf("got %d (close %v), want %d and Connection: close", resp.StatusCode, resp.Close, tt.status)
				}
				if n := h.hits.Load(); n != 0 {
					t.Errorf("upstream hits: got %d, want 0", n)
				}
			})
		}
	})
	t.Run("past the window", func(t *testing.T) {
		const limit = 48 << 10
		aborted := make(chan bool, len(chunkErrors)) // never blocks a handler
		h := newHarness(t, Config{MaxBodyBytes: limit}, func(w http.ResponseWriter, r *http.Request) {
			_, err := io.Copy(io.Discard, r.Body)
			aborted <- err != nil
		})
		prefix := fmt.Sprintf("%x\r\n%s\r\n", 40<<10, strings.Repeat("a", 40<<10))
		for _, tt := range chunkErrors {
			t.Run(tt.name, func(t *testing.T) {
				body := tt.body
				if tt.status == http.StatusRequestEntityTooLarge {
					body = fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 10<<10, strings.Repeat("a", 10<<10))
				}
				resp := h.sendHalfClosed(t, head+prefix+body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || !resp.Close {
					t.Errorf("got %d (close %v), want %d and Connection: close", resp.StatusCode, resp.Close, tt.status)
				}
				// The upstream was contacted (the body is past the window)
				// and its request aborted; the answer may come first.
				select {
				case a := <-aborted:
					if !a {
						t.Errorf("the upstream read a complete body")
					}
				case <-time.After(5 * time.Second):
					t.Errorf("the upstream request was not made, or not aborted")
				}
			})
		}
	})
}

// TestAccessLogBounded: a method as long as the head allows is logged
// bounded, like the target (issue 15).
func TestAccessLogBounded(t *testing.T) {
	h := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		t.Error("a refused request reached the upstream")
	})
	method := strings.Repeat("M", 60000)
	target := "/" + strings.Repeat("t", 60000)
	for _, tt := range []struct{ name, method, target string }{
		{name: "long method", method: method, target: "/v1/responses"},
		{name: "long target", method: "POST", target: target},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.raw(t, tt.method+" "+tt.target+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %d, want 403", resp.StatusCode)
			}
			var line string
			if !waitForLog(h, 2*time.Second, func(l string) bool { return strings.Contains(l, " 403 ") && strings.HasPrefix(l, tt.method[:4]) }, &line) {
				t.Fatalf("no access line in %.300q", h.logs)
			}
			if len(line) > 400 {
				t.Errorf("access line is %d bytes, want at most 400: %.300q", len(line), line)
			}
			if want := quote(tt.method) + " " + quote(tt.target) + " 403 "; !strings.HasPrefix(line, want) {
				t.Errorf("got %.300q, want it to start with %q", line, want)
			}
		})
	}
}

// waitForLog polls h's log for a line that match accepts.
func waitForLog(h *harness, d time.Duration, match func(string) bool, line *string) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		h.logs.mu.Lock()
		lines := slices.Clone(h.logs.lines)
		h.logs.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				*line = l
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
