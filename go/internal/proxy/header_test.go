package proxy

import (
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

func TestOutboundHeader(t *testing.T) {
	in := http.Header{
		"Authorization":         {"Bearer client-supplied"},
		"Proxy-Authorization":   {"Basic x"},
		"Proxy-Foo":             {"x"},
		"Connection":            {"keep-alive, X-Secret-Hop, authorization"},
		"X-Secret-Hop":          {"1"},
		"Keep-Alive":            {"timeout=5"},
		"Te":                    {"trailers"},
		"Trailer":               {"X-T"},
		"Transfer-Encoding":     {"chunked"},
		"Upgrade":               {"websocket"},
		"Content-Length":        {"5"},
		"Expect":                {"100-continue"},
		"Host":                  {"evil.example"},
		"Content-Type":          {"application/json"},
		"Accept":                {"text/event-stream"},
		"Originator":            {"codex_cli_rs"},
		"Session-Id":            {"abc"},
		"X-Codex-Turn-Metadata": {"{}"},
	}
	got := outboundHeader(in)
	want := http.Header{
		"Content-Type":          {"application/json"},
		"Accept":                {"text/event-stream"},
		"Originator":            {"codex_cli_rs"},
		"Session-Id":            {"abc"},
		"X-Codex-Turn-Metadata": {"{}"},
	}
	if len(got) != len(want) {
		t.Errorf("got %d headers %v, want %d %v", len(got), got, len(want), want)
	}
	for name, v := range want {
		if g := strings.Join(got[name], ","); g != strings.Join(v, ",") {
			t.Errorf("%s: got %q, want %q", name, g, strings.Join(v, ","))
		}
	}
}

func TestInboundHeader(t *testing.T) {
	src := http.Header{
		"Content-Type":                     {"text/event-stream"},
		"Content-Encoding":                 {"gzip"},
		"X-Request-Id":                     {"req_1"},
		"Access-Control-Allow-Origin":      {"*"},
		"Access-Control-Allow-Credentials": {"true"},
		"Connection":                       {"X-Hop"},
		"X-Hop":                            {"1"},
		"Transfer-Encoding":                {"chunked"},
		"Set-Cookie":                       {"a=b"},
	}
	dst := http.Header{}
	inboundHeader(dst, src)
	for _, name := range []string{"Content-Type", "Content-Encoding", "X-Request-Id", "Set-Cookie"} {
		if dst.Get(name) != src.Get(name) {
			t.Errorf("%s: got %q, want %q", name, dst.Get(name), src.Get(name))
		}
	}
	for _, name := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Connection", "X-Hop", "Transfer-Encoding"} {
		if v, ok := dst[name]; ok {
			t.Errorf("%s: got %q, want it dropped", name, v)
		}
	}
}

// FuzzHeaderFilter checks that no header a client can send survives the
// filter if it is hop-by-hop, credential-bearing or named by Connection.
func FuzzHeaderFilter(f *testing.F) {
	f.Add("Authorization", "Bearer x", "keep-alive, X-A", "X-A")
	f.Add("proxy-authorization", "Basic x", "authorization", "Host")
	f.Add("X-Codex-Turn-Metadata", "{}", "", "Content-Type")
	f.Add("Transfer-Encoding", "chunked", "Te, Trailer", "Upgrade")
	f.Fuzz(func(t *testing.T, name, value, connection, other string) {
		in := http.Header{}
		in.Add(name, value)
		in.Add(other, "v")
		in.Add("Connection", connection)
		out := outboundHeader(in)
		named := map[string]bool{}
		for _, n := range strings.Split(connection, ",") {
			if n = textproto.TrimString(n); n != "" {
				named[textproto.CanonicalMIMEHeaderKey(n)] = true
			}
		}
		for key := range out {
			canon := textproto.CanonicalMIMEHeaderKey(key)
			if hopByHop[canon] || strings.HasPrefix(canon, "Proxy-") || named[canon] {
				t.Fatalf("header %q survived the filter (Connection %q)", key, connection)
			}
		}
		resp := http.Header{}
		inboundHeader(resp, in)
		for key := range resp {
			canon := textproto.CanonicalMIMEHeaderKey(key)
			if hopByHop[canon] || named[canon] || strings.HasPrefix(canon, "Access-Control-") {
				t.Fatalf("response header %q survived the filter", key)
			}
		}
	})
}
