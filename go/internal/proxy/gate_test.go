package proxy

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parse reads a raw request as our server would see it.
func parse(t testing.TB, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("parsing %q: %v", raw, err)
	}
	return r
}

func TestGateRoute(t *testing.T) {
	const host = "Host: 127.0.0.1:8080\r\n"
	tests := []struct {
		name string
		gate Gate
		raw  string
		want route
	}{
		{name: "POST allowed", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "\r\n", want: routeForward},
		{name: "localhost allowed", raw: "POST /v1/responses HTTP/1.1\r\nHost: localhost:1\r\n\r\n", want: routeForward},
		{name: "LOCALHOST allowed", raw: "POST /v1/responses HTTP/1.1\r\nHost: LOCALHOST\r\n\r\n", want: routeForward},
		{name: "ipv6 loopback allowed", raw: "POST /v1/responses HTTP/1.1\r\nHost: [::1]:9\r\n\r\n", want: routeForward},
		{name: "ipv6 loopback without port", raw: "POST /v1/responses HTTP/1.1\r\nHost: [::1]\r\n\r\n", want: routeForward},
		{name: "loopback without port", raw: "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", want: routeForward},
		{name: "sec-fetch-site none allowed", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Sec-Fetch-Site: none\r\n\r\n", want: routeForward},
		{name: "GET rejected", raw: "GET /v1/responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "PUT rejected", raw: "PUT /v1/responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "lowercase post rejected", raw: "post /v1/responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "query rejected", raw: "POST /v1/responses?x=1 HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "empty query rejected", raw: "POST /v1/responses? HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "trailing slash rejected", raw: "POST /v1/responses/ HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "dot segment rejected", raw: "POST /v1/./responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "dot-dot rejected", raw: "POST /v2/../v1/responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "double slash rejected", raw: "POST //v1/responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "percent-encoded rejected", raw: "POST /v1/respons%65s HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "encoded slash rejected", raw: "POST /v1%2Fresponses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "case rejected", raw: "POST /V1/Responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "fragment rejected", raw: "POST /v1/responses#x HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "absolute form rejected", raw: "POST http://127.0.0.1:8080/v1/responses HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "other path rejected", raw: "POST /v1/chat/completions HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "asterisk rejected", raw: "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "shutdown disabled", raw: "GET /shutdown HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "shutdown enabled", gate: Gate{Shutdown: true}, raw: "GET /shutdown HTTP/1.1\r\n" + host + "\r\n", want: routeShutdown},
		{name: "shutdown POST rejected", gate: Gate{Shutdown: true}, raw: "POST /shutdown HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "shutdown query rejected", gate: Gate{Shutdown: true}, raw: "GET /shutdown?now HTTP/1.1\r\n" + host + "\r\n", want: routeDenied},
		{name: "rebinding host rejected", raw: "POST /v1/responses HTTP/1.1\r\nHost: attacker.example:8080\r\n\r\n", want: routeDenied},
		{name: "rebinding host shutdown rejected", gate: Gate{Shutdown: true}, raw: "GET /shutdown HTTP/1.1\r\nHost: attacker.example:8080\r\n\r\n", want: routeDenied},
		{name: "other loopback address rejected", raw: "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.2:8080\r\n\r\n", want: routeDenied},
		{name: "localhost suffix rejected", raw: "POST /v1/responses HTTP/1.1\r\nHost: localhost.attacker.example\r\n\r\n", want: routeDenied},
		{name: "unspecified address rejected", raw: "POST /v1/responses HTTP/1.1\r\nHost: 0.0.0.0:8080\r\n\r\n", want: routeDenied},
		{name: "origin rejected", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Origin: https://evil.example\r\n\r\n", want: routeDenied},
		{name: "null origin rejected", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Origin: null\r\n\r\n", want: routeDenied},
		{name: "img shutdown rejected", gate: Gate{Shutdown: true}, raw: "GET /shutdown HTTP/1.1\r\n" + host + "Sec-Fetch-Site: cross-site\r\n\r\n", want: routeDenied},
		{name: "same-site fetch rejected", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Sec-Fetch-Site: same-site\r\n\r\n", want: routeDenied},
		{name: "allowed origin", gate: Gate{Origins: []string{"http://localhost:3000"}}, raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Origin: http://localhost:3000\r\nSec-Fetch-Site: same-site\r\n\r\n", want: routeForward},
		{name: "other origin with allow list", gate: Gate{Origins: []string{"http://localhost:3000"}}, raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Origin: http://localhost:3001\r\n\r\n", want: routeDenied},
		{name: "two origins rejected", gate: Gate{Origins: []string{"http://localhost:3000"}}, raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Origin: http://localhost:3000\r\nOrigin: http://x\r\n\r\n", want: routeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.gate.route(parse(t, tt.raw))
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzAllowRequest checks the gate's contract on arbitrary requests: only an
// exact POST /v1/responses (or GET /shutdown when enabled) from a loopback
// Host without browser headers gets through.
func FuzzAllowRequest(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "requests", "*.http"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed requests in testdata/requests: %v", err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.ReplaceAll(string(b), "\n", "\r\n"), true)
	}
	f.Fuzz(func(t *testing.T, raw string, shutdown bool) {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		g := Gate{Shutdown: shutdown}
		switch g.route(r) {
		case routeForward:
			if r.Method != "POST" || r.RequestURI != "/v1/responses" {
				t.Fatalf("forwarded %q %q", r.Method, r.RequestURI)
			}
		case routeShutdown:
			if !shutdown || r.Method != "GET" || r.RequestURI != "/shutdown" {
				t.Fatalf("shutdown by %q %q (enabled %v)", r.Method, r.RequestURI, shutdown)
			}
		default:
			return
		}
		if !loopbackHost(r.Host) {
			t.Fatalf("allowed Host %q", r.Host)
		}
		if _, ok := r.Header["Origin"]; ok {
			t.Fatalf("allowed a request with Origin")
		}
		if s, ok := r.Header["Sec-Fetch-Site"]; ok && (len(s) != 1 || s[0] != "none") {
			t.Fatalf("allowed Sec-Fetch-Site %q", s)
		}
		if h := strings.ToLower(r.Host); h != "localhost" && !strings.HasPrefix(h, "localhost:") &&
			!strings.HasPrefix(h, "127.0.0.1") && !strings.HasPrefix(h, "[::1]") && h != "::1" {
			t.Fatalf("allowed Host %q", r.Host)
		}
	})
}
