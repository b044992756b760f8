package proxy

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

const testOrigin = "http://127.0.0.1:5173"

func TestGatePreflight(t *testing.T) {
	const head = "OPTIONS /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
	const origin = "Origin: " + testOrigin + "\r\n"
	const post = "Access-Control-Request-Method: POST\r\n"
	allowing := Gate{Origins: []string{"http://localhost:3000", testOrigin}}
	tests := []struct {
		name string
		gate Gate
		raw  string
		want route
	}{
		{name: "preflight", gate: allowing, raw: head + origin + post + "\r\n", want: routePreflight},
		{name: "preflight with headers", gate: allowing, raw: head + origin + post + "Access-Control-Request-Headers: content-type,x-client-request-id\r\n\r\n", want: routePreflight},
		{name: "preflight as Chromium sends it", gate: allowing, raw: head + origin + post + "Access-Control-Request-Headers: content-type\r\nSec-Fetch-Site: same-site\r\nSec-Fetch-Mode: cors\r\n\r\n", want: routePreflight},
		{name: "preflight in lowercase field names", gate: allowing, raw: head + "origin: " + testOrigin + "\r\naccess-control-request-method: POST\r\n\r\n", want: routePreflight},
		{name: "no allowed origins", raw: head + origin + post + "\r\n", want: routeDenied},
		{name: "other origin", gate: allowing, raw: head + "Origin: http://127.0.0.1:5174\r\n" + post + "\r\n", want: routeDenied},
		{name: "no origin", gate: allowing, raw: head + post + "\r\n", want: routeDenied},
		{name: "two origins", gate: allowing, raw: head + origin + origin + post + "\r\n", want: routeDenied},
		{name: "no requested method", gate: allowing, raw: head + origin + "\r\n", want: routeDenied},
		{name: "PUT requested", gate: allowing, raw: head + origin + "Access-Control-Request-Method: PUT\r\n\r\n", want: routeDenied},
		{name: "GET requested", gate: allowing, raw: head + origin + "Access-Control-Request-Method: GET\r\n\r\n", want: routeDenied},
		{name: "lowercase post requested", gate: allowing, raw: head + origin + "Access-Control-Request-Method: post\r\n\r\n", want: routeDenied},
		{name: "two requested methods", gate: allowing, raw: head + origin + post + post + "\r\n", want: routeDenied},
		{name: "method list requested", gate: allowing, raw: head + origin + "Access-Control-Request-Method: POST, PUT\r\n\r\n", want: routeDenied},
		{name: "private network access", gate: allowing, raw: head + origin + post + "Access-Control-Request-Private-Network: true\r\n\r\n", want: routeDenied},
		{name: "header that is no token", gate: allowing, raw: head + origin + post + "Access-Control-Request-Headers: content-type,x(y)\r\n\r\n", want: routeDenied},
		{name: "header with a space inside", gate: allowing, raw: head + origin + post + "Access-Control-Request-Headers: x y\r\n\r\n", want: routeDenied},
		{name: "two requested-headers fields", gate: allowing, raw: head + origin + post + "Access-Control-Request-Headers: a\r\nAccess-Control-Request-Headers: b\r\n\r\n", want: routeDenied},
		{name: "other path", gate: allowing, raw: "OPTIONS /shutdown HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + origin + post + "\r\n", want: routeDenied},
		{name: "query", gate: allowing, raw: "OPTIONS /v1/responses?x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + origin + post + "\r\n", want: routeDenied},
		{name: "asterisk", gate: allowing, raw: "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + origin + post + "\r\n", want: routeDenied},
		{name: "lowercase options", gate: allowing, raw: "options /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + origin + post + "\r\n", want: routeDenied},
		{name: "rebinding host", gate: allowing, raw: "OPTIONS /v1/responses HTTP/1.1\r\nHost: attacker.example:8080\r\n" + origin + post + "\r\n", want: routeDenied},
		{name: "POST from the allowed origin", gate: allowing, raw: "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + origin + "\r\n", want: routeForward},
		{name: "GET from the allowed origin", gate: allowing, raw: "GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + origin + "\r\n", want: routeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.gate.route(parse(t, tt.raw)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRequestedHeaders(t *testing.T) {
	tests := []struct {
		name  string
		value string // "-" for no field
		want  string
		ok    bool
	}{
		{name: "no field", value: "-", want: "", ok: true},
		{name: "empty", value: "", want: "", ok: true},
		{name: "one", value: "content-type", want: "content-type", ok: true},
		{name: "as Chromium sends them", value: "content-type,x-client-request-id", want: "content-type,x-client-request-id", ok: true},
		{name: "spaces and empty elements", value: " content-type ,, X-A\t", want: "content-type,X-A", ok: true},
		{name: "separator", value: "a;b", ok: false},
		{name: "quote", value: `"a"`, ok: false},
		{name: "non-ASCII", value: "é", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fields []httpsyntax.Field
			if tt.value != "-" {
				fields = append(fields, httpsyntax.Field{Name: "access-control-request-headers", Value: tt.value})
			}
			got, ok := requestedHeaders(fields)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestCORSThroughProxy runs the allowed page's two requests and the refused
// ones through the proxy: the preflight is answered without reaching the
// upstream, the POST's answer (and the proxy's own errors) carry our grant
// and never the upstream's, and the rest is refused as without the flag.
func TestCORSThroughProxy(t *testing.T) {
	h := newHarness(t, Config{Gate: Gate{Origins: []string{testOrigin}}, MaxBodyBytes: 1 << 10},
		func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Access-Control-Expose-Headers", "*")
			w.Header().Set("Vary", "Accept-Encoding")
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {}\n\n")
		})
	const host = "Host: 127.0.0.1\r\n"
	const origin = "Origin: " + testOrigin + "\r\n"
	preflight := "OPTIONS /v1/responses HTTP/1.1\r\n" + host + origin + "Access-Control-Request-Method: POST\r\n"
	post := func(extra string) string {
		return "POST /v1/responses HTTP/1.1\r\n" + host + extra + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	}
	granted := http.Header{"Access-Control-Allow-Origin": {testOrigin}}
	tests := []struct {
		name string
		req  string
		want int
		hits int64
		// cors is every Access-Control-* field the answer must carry, and
		// nothing else of the kind; vary, the Vary values.
		cors http.Header
		vary []string
	}{
		{name: "preflight", req: preflight + "Access-Control-Request-Headers: content-type,x-client-request-id\r\n\r\n", want: 204,
			cors: http.Header{
				"Access-Control-Allow-Origin":  {testOrigin},
				"Access-Control-Allow-Methods": {"POST"},
				"Access-Control-Allow-Headers": {"content-type,x-client-request-id"},
				"Access-Control-Max-Age":       {"600"},
			}, vary: []string{"Origin, Access-Control-Request-Headers"}},
		{name: "preflight without headers", req: preflight + "\r\n", want: 204,
			cors: http.Header{
				"Access-Control-Allow-Origin":  {testOrigin},
				"Access-Control-Allow-Methods": {"POST"},
				"Access-Control-Max-Age":       {"600"},
			}, vary: []string{"Origin, Access-Control-Request-Headers"}},
		{name: "POST from the allowed origin", req: post(origin), want: 200, hits: 1, cors: granted, vary: []string{"Accept-Encoding", "Origin"}},
		{name: "POST without origin", req: post(""), want: 200, hits: 1, vary: []string{"Accept-Encoding"}},
		{name: "too large from the allowed origin", req: "POST /v1/responses HTTP/1.1\r\n" + host + origin + "Content-Length: 2000\r\n\r\n", want: 413, cors: granted, vary: []string{"Origin"}},
		{name: "POST from another origin", req: post("Origin: http://127.0.0.1:5174\r\n"), want: 403},
		{name: "preflight from another origin", req: "OPTIONS /v1/responses HTTP/1.1\r\n" + host + "Origin: http://127.0.0.1:5174\r\nAccess-Control-Request-Method: POST\r\n\r\n", want: 403},
		{name: "preflight for PUT", req: "OPTIONS /v1/responses HTTP/1.1\r\n" + host + origin + "Access-Control-Request-Method: PUT\r\n\r\n", want: 403},
		{name: "preflight for private network access", req: preflight + "Access-Control-Request-Private-Network: true\r\n\r\n", want: 403},
		{name: "OPTIONS of another path", req: "OPTIONS /shutdown HTTP/1.1\r\n" + host + origin + "Access-Control-Request-Method: POST\r\n\r\n", want: 403},
		{name: "PUT from the allowed origin", req: "PUT /v1/responses HTTP/1.1\r\n" + host + origin + "Content-Length: 2\r\n\r\n{}", want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.hits.Load()
			resp := h.raw(t, tt.req)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if got := h.hits.Load() - before; got != tt.hits {
				t.Errorf("upstream hits: got %d, want %d", got, tt.hits)
			}
			got := http.Header{}
			for name, v := range resp.Header {
				if strings.HasPrefix(name, "Access-Control-") {
					got[name] = v
				}
			}
			if !equalHeaders(got, tt.cors) {
				t.Errorf("got CORS fields %q, want %q", got, tt.cors)
			}
			if v := resp.Header.Values("Vary"); !slices.Equal(v, tt.vary) {
				t.Errorf("got Vary %q, want %q", v, tt.vary)
			}
			if tt.want == 204 && len(body) != 0 {
				t.Errorf("preflight answer has a body: %q", body)
			}
		})
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
