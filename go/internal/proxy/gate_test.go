package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/server"
)

// parseRequest reads the head of a raw request into a server.Request the
// way our server fills one in: the target exactly as sent, the fields in
// their order and case, and the single Host field taken out of them. The
// body is not framed; the gate never reads it. It reports false for a head
// the server would refuse outright: no request line, a field line without
// a colon or with whitespace before it, obs-fold, or more than one Host.
func parseRequest(raw string) (*server.Request, bool) {
	head, _, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		return nil, false
	}
	lines := strings.Split(head, "\r\n")
	method, rest, ok1 := strings.Cut(lines[0], " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" {
		return nil, false
	}
	r := &server.Request{Method: method, Target: target, Body: http.NoBody}
	switch proto {
	case "HTTP/1.1":
		r.ProtoMinor = 1
	case "HTTP/1.0":
	default:
		return nil, false
	}
	hosts := 0
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, false
		}
		value = strings.Trim(value, " \t")
		if strings.EqualFold(name, "Host") {
			hosts++
			r.Host = value
			continue
		}
		r.Fields = append(r.Fields, httpsyntax.Field{Name: name, Value: value})
	}
	return r, hosts <= 1
}

// parse is parseRequest for a request the test wrote to be well formed.
func parse(t testing.TB, raw string) *server.Request {
	t.Helper()
	r, ok := parseRequest(raw)
	if !ok {
		t.Fatalf("parsing %q: malformed", raw)
	}
	return r
}

func TestParseRequest(t *testing.T) {
	r := parse(t, "POST /v1/responses?x HTTP/1.1\r\nx-a: 1\r\nhOST:  [::1]:9 \r\nX-A:\t2\r\nOrigin: o\r\n\r\nbody")
	want := []httpsyntax.Field{{Name: "x-a", Value: "1"}, {Name: "X-A", Value: "2"}, {Name: "Origin", Value: "o"}}
	if r.Method != "POST" || r.Target != "/v1/responses?x" || r.ProtoMinor != 1 || r.Host != "[::1]:9" {
		t.Errorf("got %q %q 1.%d Host %q, want POST /v1/responses?x 1.1 Host [::1]:9", r.Method, r.Target, r.ProtoMinor, r.Host)
	}
	if !slices.Equal(r.Fields, want) {
		t.Errorf("got fields %q, want %q", r.Fields, want)
	}
	for _, raw := range []string{
		"POST /v1/responses HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"POST /v1/responses HTTP/1.1\r\nOrigin : x\r\n\r\n",
		"POST /v1/responses HTTP/1.1\r\nX-A: 1\r\n continued\r\n\r\n",
		"POST /v1/responses\r\n\r\n",
		"POST /v1/responses HTTP/2.0\r\n\r\n",
		"POST /v1/responses HTTP/1.1\r\nHost: a\r\n",
	} {
		if r, ok := parseRequest(raw); ok {
			t.Errorf("parseRequest(%q): got %+v, want it refused", raw, r)
		}
	}
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
		// Field names are case-insensitive (RFC 9110, 5.1): the server keeps
		// them as sent, so the gate must not rely on canonical case.
		{name: "lowercase host allowed", raw: "POST /v1/responses HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n", want: routeForward},
		{name: "lowercase origin rejected", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "origin: https://evil.example\r\n\r\n", want: routeDenied},
		{name: "uppercase origin rejected", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "ORIGIN: null\r\n\r\n", want: routeDenied},
		{name: "uppercase sec-fetch-site rejected", gate: Gate{Shutdown: true}, raw: "GET /shutdown HTTP/1.1\r\n" + host + "SEC-FETCH-SITE: cross-site\r\n\r\n", want: routeDenied},
		{name: "lowercase sec-fetch-site none allowed", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "sec-fetch-site: none\r\n\r\n", want: routeForward},
		{name: "two sec-fetch-site in different case rejected", raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Sec-Fetch-Site: none\r\nsec-fetch-site: cross-site\r\n\r\n", want: routeDenied},
		{name: "allowed origin in lowercase", gate: Gate{Origins: []string{"http://localhost:3000"}}, raw: "POST /v1/responses HTTP/1.1\r\n" + host + "origin: http://localhost:3000\r\n\r\n", want: routeForward},
		{name: "two origins in different case rejected", gate: Gate{Origins: []string{"http://localhost:3000"}}, raw: "POST /v1/responses HTTP/1.1\r\n" + host + "Origin: http://localhost:3000\r\nORIGIN: http://localhost:3000\r\n\r\n", want: routeDenied},
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
		r, ok := parseRequest(raw)
		if !ok {
			return
		}
		g := Gate{Shutdown: shutdown}
		switch g.route(r) {
		case routeForward:
			if r.Method != "POST" || r.Target != "/v1/responses" {
				t.Fatalf("forwarded %q %q", r.Method, r.Target)
			}
		case routePreflight:
			t.Fatalf("preflight %q %q answered with no origin allowed", r.Method, r.Target)
		case routeShutdown:
			if !shutdown || r.Method != "GET" || r.Target != "/shutdown" {
				t.Fatalf("shutdown by %q %q (enabled %v)", r.Method, r.Target, shutdown)
			}
		default:
			return
		}
		if !loopbackHost(r.Host) {
			t.Fatalf("allowed Host %q", r.Host)
		}
		// Field names are case-insensitive (RFC 9110, 5.1), and tokens are
		// ASCII: a name that only Unicode folding makes "Origin" is no
		// Origin field.
		var sites []string
		for _, f := range r.Fields {
			switch lowerASCII(f.Name) {
			case "origin":
				t.Fatalf("allowed a request with %s", f.Name)
			case "sec-fetch-site":
				sites = append(sites, f.Value)
			}
		}
		if len(sites) > 0 && (len(sites) != 1 || sites[0] != "none") {
			t.Fatalf("allowed Sec-Fetch-Site %q", sites)
		}
		if h := strings.ToLower(r.Host); h != "localhost" && !strings.HasPrefix(h, "localhost:") &&
			!strings.HasPrefix(h, "127.0.0.1") && !strings.HasPrefix(h, "[::1]") && h != "::1" {
			t.Fatalf("allowed Host %q", r.Host)
		}
	})
}
