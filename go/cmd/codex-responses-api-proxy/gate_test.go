package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// countingUpstream answers 200 to whatever reaches it.
func countingUpstream(t *testing.T) *fakeUpstream {
	return newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
}

// TestForbidden sends, raw over TCP, requests that are anything but
// POST /v1/responses from a loopback, non-browser client: each gets 403 with
// a short body, and nothing reaches the upstream.
func TestForbidden(t *testing.T) {
	t.Parallel()
	const body = `{"model":"m"}`
	post := func(target, extra string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: {addr}\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", target, extra, len(body), body)
	}
	hostPost := func(host string) string {
		return fmt.Sprintf("POST /v1/responses HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body)
	}
	tests := []struct {
		name string
		raw  string
	}{
		{name: "GET", raw: "GET /v1/responses HTTP/1.1\r\nHost: {addr}\r\n\r\n"},
		{name: "PUT", raw: "PUT /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}"},
		{name: "DELETE", raw: "DELETE /v1/responses HTTP/1.1\r\nHost: {addr}\r\n\r\n"},
		{name: "PATCH", raw: "PATCH /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}"},
		{name: "HEAD", raw: "HEAD /v1/responses HTTP/1.1\r\nHost: {addr}\r\n\r\n"},
		{name: "OPTIONS preflight", raw: "OPTIONS /v1/responses HTTP/1.1\r\nHost: {addr}\r\nAccess-Control-Request-Method: POST\r\n\r\n"},
		{name: "OPTIONS asterisk", raw: "OPTIONS * HTTP/1.1\r\nHost: {addr}\r\n\r\n"},
		{name: "lowercase method", raw: "post /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}"},
		{name: "query", raw: post("/v1/responses?api-version=1", "")},
		{name: "empty query", raw: post("/v1/responses?", "")},
		{name: "trailing slash", raw: post("/v1/responses/", "")},
		{name: "dot segment", raw: post("/v1/./responses", "")},
		{name: "dot-dot segment", raw: post("/v2/../v1/responses", "")},
		{name: "percent-encoded letter", raw: post("/v1/respons%65s", "")},
		{name: "percent-encoded slash", raw: post("/v1%2Fresponses", "")},
		{name: "double slash in front", raw: post("//v1/responses", "")},
		{name: "double slash inside", raw: post("/v1//responses", "")},
		{name: "uppercase path", raw: post("/V1/Responses", "")},
		{name: "absolute form", raw: post("http://{addr}/v1/responses", "")},
		{name: "other path", raw: post("/v1/chat/completions", "")},
		{name: "root", raw: post("/", "")},
		{name: "v1 only", raw: post("/v1", "")},
		{name: "POST shutdown", raw: post("/shutdown", "")},
		{name: "GET shutdown without the flag", raw: "GET /shutdown HTTP/1.1\r\nHost: {addr}\r\n\r\n"},
		{name: "rebinding Host", raw: hostPost("attacker.example:{port}")},
		{name: "rebinding Host without port", raw: hostPost("attacker.example")},
		{name: "other loopback address", raw: hostPost("127.0.0.2:{port}")},
		{name: "localhost suffix", raw: hostPost("localhost.attacker.example:{port}")},
		{name: "loopback-looking name", raw: hostPost("127.0.0.1.nip.io:{port}")},
		{name: "Origin same host", raw: post("/v1/responses", "Origin: http://{addr}\r\n")},
		{name: "Origin null", raw: post("/v1/responses", "Origin: null\r\n")},
		{name: "Origin web page", raw: post("/v1/responses", "Origin: https://attacker.example\r\n")},
		{name: "Sec-Fetch-Site cross-site", raw: post("/v1/responses", "Sec-Fetch-Site: cross-site\r\n")},
		{name: "Sec-Fetch-Site same-site", raw: post("/v1/responses", "Sec-Fetch-Site: same-site\r\n")},
		{name: "Sec-Fetch-Site same-origin", raw: post("/v1/responses", "Sec-Fetch-Site: same-origin\r\n")},
		{name: "text/plain form from a page", raw: post("/v1/responses", "Origin: https://attacker.example\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\n")},
	}
	up := countingUpstream(t)
	p := startProxy(t, options{up: up})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			raw := strings.ReplaceAll(tt.raw, "{port}", fmt.Sprint(p.port))
			resp, got := p.raw(raw)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusForbidden)
			}
			if len(got) > 200 {
				t.Errorf("body: got %d bytes, want a short fixed body", len(got))
			}
			for name := range resp.Header {
				if strings.HasPrefix(name, "Access-Control-") {
					t.Errorf("403 carries %s", name)
				}
			}
			if n := up.hits.Load() - before; n != 0 {
				t.Errorf("requests forwarded upstream: got %d, want 0", n)
			}
		})
	}
	if p.exited(0) {
		t.Errorf("proxy exited; stderr:\n%s", p.stderr.String())
	}
}

// TestBrowserShutdownRefused: with --http-shutdown, a web page still cannot
// stop the proxy, neither by DNS rebinding nor by an <img> or fetch.
func TestBrowserShutdownRefused(t *testing.T) {
	t.Parallel()
	p := startProxy(t, options{up: countingUpstream(t), args: []string{"--http-shutdown"}})
	tests := []struct {
		name  string
		extra string
	}{
		{name: "rebinding Host", extra: "Host: attacker.example:{port}\r\n"},
		{name: "Origin", extra: "Host: {addr}\r\nOrigin: https://attacker.example\r\n"},
		{name: "img tag", extra: "Host: {addr}\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := strings.ReplaceAll("GET /shutdown HTTP/1.1\r\n"+tt.extra+"\r\n", "{port}", fmt.Sprint(p.port))
			if resp, _ := p.raw(raw); resp.StatusCode != http.StatusForbidden {
				t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusForbidden)
			}
			if p.exited(200 * time.Millisecond) {
				t.Fatalf("proxy exited after a browser's /shutdown; stderr:\n%s", p.stderr.String())
			}
		})
	}
}

// TestAllowOrigin: with --allow-origin, the browser's preflight from that
// exact origin is answered by the proxy itself, and the answer to its POST
// tells the browser that the page may read it; every other origin is refused
// both, and no preflight reaches the upstream.
func TestAllowOrigin(t *testing.T) {
	t.Parallel()
	const allowed = "http://localhost:5173"
	up := countingUpstream(t)
	p := startProxy(t, options{up: up, args: []string{"--allow-origin", allowed}})
	const preflight = "OPTIONS /v1/responses HTTP/1.1\r\nHost: {addr}\r\nOrigin: %s\r\n" +
		"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
	const post = "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nOrigin: %s\r\nContent-Length: 2\r\n\r\n{}"
	tests := []struct {
		name   string
		origin string
		want   int // to the POST; the preflight gets 204 or 403 alike
	}{
		{name: "allowed origin", origin: allowed, want: http.StatusOK},
		{name: "other port", origin: "http://localhost:5174", want: http.StatusForbidden},
		{name: "other scheme", origin: "https://localhost:5173", want: http.StatusForbidden},
		{name: "trailing slash", origin: allowed + "/", want: http.StatusForbidden},
		{name: "web page", origin: "https://attacker.example", want: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantGrant, wantPreflight := "", http.StatusForbidden
			if tt.want == http.StatusOK {
				wantGrant, wantPreflight = tt.origin, http.StatusNoContent
			}
			before := up.hits.Load()
			resp, _ := p.raw(fmt.Sprintf(preflight, tt.origin))
			if resp.StatusCode != wantPreflight {
				t.Errorf("preflight status: got %d, want %d", resp.StatusCode, wantPreflight)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != wantGrant {
				t.Errorf("preflight Access-Control-Allow-Origin: got %q, want %q", got, wantGrant)
			}
			if wantGrant != "" {
				for name, want := range map[string]string{"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "content-type"} {
					if got := resp.Header.Get(name); got != want {
						t.Errorf("preflight %s: got %q, want %q", name, got, want)
					}
				}
			}
			up.checkHits(t, before, false)

			resp, _ = p.raw(fmt.Sprintf(post, tt.origin))
			if resp.StatusCode != tt.want {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.want)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != wantGrant {
				t.Errorf("Access-Control-Allow-Origin: got %q, want %q", got, wantGrant)
			}
			if wantGrant != "" && resp.Header.Get("Vary") != "Origin" {
				t.Errorf("Vary: got %q, want %q", resp.Header.Values("Vary"), "Origin")
			}
			up.checkHits(t, before, tt.want == http.StatusOK)
		})
	}
}

func TestMaxBodyBytes(t *testing.T) {
	t.Parallel()
	const limit = 1000
	// complete counts upstream requests whose whole body arrived.
	var complete, partial int
	results := make(chan bool, 16)
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		results <- err == nil
		w.WriteHeader(http.StatusOK)
	})
	p := startProxy(t, options{up: up, args: []string{"--max-body-bytes", fmt.Sprint(limit)}})
	chunked := func(n int) string {
		return fmt.Sprintf("POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", n, strings.Repeat("a", n))
	}
	sized := func(n int) string {
		return fmt.Sprintf("POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: %d\r\n\r\n%s", n, strings.Repeat("a", n))
	}
	tests := []struct {
		name string
		raw  string
		want []int
	}{
		{name: "declared length at the limit", raw: sized(limit), want: []int{http.StatusOK}},
		{name: "chunked at the limit", raw: chunked(limit), want: []int{http.StatusOK}},
		// The body is never sent: 413 must come from the declared length alone.
		{name: "declared length over the limit", raw: fmt.Sprintf("POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: %d\r\n\r\n", limit+1), want: []int{http.StatusRequestEntityTooLarge}},
		{name: "huge declared length", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 99999999999\r\n\r\n", want: []int{http.StatusRequestEntityTooLarge}},
		{name: "chunked over the limit", raw: chunked(limit + 1), want: []int{http.StatusRequestEntityTooLarge, http.StatusBadRequest}},
		{name: "chunked far over the limit", raw: chunked(20 * limit), want: []int{http.StatusRequestEntityTooLarge, http.StatusBadRequest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, completeBefore := up.hits.Load(), complete
			resp, _ := p.raw(tt.raw)
			if !intIn(resp.StatusCode, tt.want) {
				t.Errorf("status: got %d, want one of %v", resp.StatusCode, tt.want)
			}
			up.settle(t)
			for range up.hits.Load() - before {
				if <-results {
					complete++
				} else {
					partial++
				}
			}
			if resp.StatusCode == http.StatusOK {
				return
			}
			if complete != completeBefore {
				t.Errorf("an oversized body reached the upstream complete")
			}
		})
	}
	t.Logf("upstream saw %d complete and %d aborted requests", complete, partial)
	if complete != 2 {
		t.Errorf("complete upstream requests: got %d, want 2 (the two at the limit)", complete)
	}
}

func intIn(v int, set []int) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func TestFraming(t *testing.T) {
	t.Parallel()
	up := countingUpstream(t)
	p := startProxy(t, options{up: up})

	// RFC 9112, 6.3: a request with both Transfer-Encoding and
	// Content-Length may be rejected, or served and its connection closed.
	for _, tt := range []struct {
		name string
		raw  string
		want []int
	}{
		{name: "chunked", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", want: []int{http.StatusOK}},
		{name: "chunked and Content-Length", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", want: []int{http.StatusOK, http.StatusBadRequest}},
	} {
		t.Run(tt.name+" closes the connection", func(t *testing.T) {
			c := p.dial()
			defer c.Close()
			resp, _ := p.rawOn(c, tt.raw)
			if !intIn(resp.StatusCode, tt.want) {
				t.Fatalf("status: got %d, want one of %v", resp.StatusCode, tt.want)
			}
			if !resp.Close {
				t.Errorf("Connection: got %q, want close", resp.Header.Get("Connection"))
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("connection still open after a Transfer-Encoding request: read %d, %v", n, err)
			}
		})
	}
	t.Run("Expect 100-continue", func(t *testing.T) {
		c := p.dial()
		defer c.Close()
		const body = `{"model":"m"}`
		head := fmt.Sprintf("POST /v1/responses HTTP/1.1\r\nHost: %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", p.addr, len(body))
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		interim, err := http.ReadResponse(br, nil)
		if err != nil || interim.StatusCode != http.StatusContinue {
			t.Fatalf("interim response: got %v, %v; want 100 Continue", interim, err)
		}
		if _, err := io.WriteString(c, body); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("final response: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
		}
	})
	t.Run("Expect 100-continue refused without reading the body", func(t *testing.T) {
		before := up.hits.Load()
		resp, _ := p.raw("POST /v1/responses HTTP/1.1\r\nHost: attacker.example\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusForbidden)
		}
		if got := up.hits.Load(); got != before {
			t.Errorf("upstream hits: got %d, want %d", got, before)
		}
	})
	t.Run("Content-Length keeps the connection", func(t *testing.T) {
		c := p.dial()
		defer c.Close()
		for i := range 2 {
			resp, _ := p.rawOn(c, "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}")
			if resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("request %d: got %d close=%v, want 200 keep-alive", i, resp.StatusCode, resp.Close)
			}
		}
	})

	headers := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-Field-%d: v\r\n", i)
		}
		return b.String()
	}
	tests := []struct {
		name string
		raw  string
		want []int
	}{
		{name: "100 header fields", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\n" + headers(99) + "Content-Length: 2\r\n\r\n{}", want: []int{http.StatusOK}},
		{name: "101 header fields", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\n" + headers(100) + "Content-Length: 2\r\n\r\n{}", want: []int{http.StatusRequestHeaderFieldsTooLarge}},
		{name: "500 header fields", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\n" + headers(500) + "Content-Length: 2\r\n\r\n{}", want: []int{http.StatusRequestHeaderFieldsTooLarge}},
		{name: "missing Host", raw: "POST /v1/responses HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", want: []int{http.StatusBadRequest}},
		{name: "duplicated Host", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}", want: []int{http.StatusBadRequest}},
		{name: "conflicting Content-Length", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", want: []int{http.StatusBadRequest}},
		{name: "malformed Content-Length", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: +2\r\n\r\n{}", want: []int{http.StatusBadRequest}},
		{name: "unsupported Transfer-Encoding", raw: "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: gzip\r\n\r\n{}", want: []int{http.StatusBadRequest, http.StatusNotImplemented}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			resp, _ := p.raw(tt.raw)
			if !intIn(resp.StatusCode, tt.want) {
				t.Errorf("status: got %d, want one of %v", resp.StatusCode, tt.want)
			}
			up.checkHits(t, before, resp.StatusCode == http.StatusOK)
		})
	}
}

// TestMaxConnections holds two connections open with unfinished request
// heads; a third gets a fast 503, and is served once one of them closes.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	p := startProxy(t, options{up: countingUpstream(t), args: []string{"--max-connections", "2"}})
	var held []net.Conn
	for range 2 {
		c := p.dial()
		defer c.Close()
		if _, err := io.WriteString(c, "POST /v1/responses HTTP/1.1\r\nHost: "+p.addr+"\r\n"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Let the proxy accept both before the third arrives.
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	resp, _ := p.raw("POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third connection: got %d, want %d", resp.StatusCode, http.StatusServiceUnavailable)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("503 took %v, want a fast answer", d)
	}

	held[0].Close()
	served := waitFor(exitTimeout, func() bool {
		resp, _ := p.raw("POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}")
		return resp.StatusCode == http.StatusOK
	})
	if !served {
		t.Error("no request served after a held connection closed")
	}
}
