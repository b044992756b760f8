package proxy

import (
	"slices"
	"strings"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// fields builds a field list from name, value pairs.
func fields(nv ...string) []httpsyntax.Field {
	out := make([]httpsyntax.Field, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		out = append(out, httpsyntax.Field{Name: nv[i], Value: nv[i+1]})
	}
	return out
}

func TestOutboundFields(t *testing.T) {
	tests := []struct {
		name string
		in   []httpsyntax.Field
		want []httpsyntax.Field
	}{
		{
			name: "hop-by-hop and credentials dropped",
			in: fields(
				"Authorization", "Bearer client-supplied",
				"Proxy-Authorization", "Basic x",
				"Proxy-Foo", "x",
				"Connection", "keep-alive, X-Secret-Hop, authorization",
				"X-Secret-Hop", "1",
				"Keep-Alive", "timeout=5",
				"Te", "trailers",
				"Trailer", "X-T",
				"Transfer-Encoding", "chunked",
				"Upgrade", "websocket",
				"Content-Length", "5",
				"Expect", "100-continue",
				"Host", "evil.example",
				"Content-Type", "application/json",
				"Accept", "text/event-stream",
				"Originator", "codex_cli_rs",
				"Session-Id", "abc",
				"X-Codex-Turn-Metadata", "{}",
			),
			want: fields(
				"Content-Type", "application/json",
				"Accept", "text/event-stream",
				"Originator", "codex_cli_rs",
				"Session-Id", "abc",
				"X-Codex-Turn-Metadata", "{}",
			),
		},
		{
			name: "lowercase authorization dropped",
			in:   fields("authorization", "Bearer client-supplied", "AUTHORIZATION", "Bearer x", "Accept", "*/*"),
			want: fields("Accept", "*/*"),
		},
		{
			name: "Connection names a field in another case",
			in:   fields("CONNECTION", "x-foo", "X-FOO", "1", "x-Foo", "2", "X-Foo-Bar", "kept"),
			want: fields("X-Foo-Bar", "kept"),
		},
		{
			name: "proxy fields in any case dropped",
			in:   fields("proxy-authorization", "Basic x", "PROXY-FOO", "1", "Proxy-Connection", "keep-alive", "Proxyish", "kept"),
			want: fields("Proxyish", "kept"),
		},
		{
			name: "hop-by-hop in any case dropped",
			in: fields(
				"connection", "close", "keep-alive", "timeout=5", "TE", "trailers", "trailer", "X-T",
				"transfer-encoding", "chunked", "UPGRADE", "h2c", "content-length", "5",
				"EXPECT", "100-continue", "host", "evil.example", "Accept", "*/*",
			),
			want: fields("Accept", "*/*"),
		},
		{
			name: "several Connection fields, whitespace and empty elements",
			in:   fields("Connection", " , X-A ,,", "X-A", "1", "connection", "\tx-b\t", "X-B", "2", "X-C", "3"),
			want: fields("X-C", "3"),
		},
		{
			name: "order, case and duplicates kept",
			in: fields(
				"x-codex-turn-metadata", "{}",
				"Accept", "text/event-stream",
				"authorization", "Bearer client-supplied",
				"content-type", "application/json",
				"Accept", "application/json",
				"Session-ID", "abc",
				"originator", "codex_cli_rs",
			),
			want: fields(
				"x-codex-turn-metadata", "{}",
				"Accept", "text/event-stream",
				"content-type", "application/json",
				"Accept", "application/json",
				"Session-ID", "abc",
				"originator", "codex_cli_rs",
			),
		},
		{
			name: "CORS request fields kept",
			in:   fields("Access-Control-Request-Method", "POST"),
			want: fields("Access-Control-Request-Method", "POST"),
		},
		{name: "none", in: nil, want: fields()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := outboundFields(in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("input changed to %q, want %q", in, tt.in)
			}
		})
	}
}

func TestInboundFields(t *testing.T) {
	tests := []struct {
		name string
		src  []httpsyntax.Field
		want []httpsyntax.Field
	}{
		{
			name: "hop-by-hop and CORS dropped",
			src: fields(
				"Content-Type", "text/event-stream",
				"Content-Encoding", "gzip",
				"X-Request-Id", "req_1",
				"Access-Control-Allow-Origin", "*",
				"Access-Control-Allow-Credentials", "true",
				"Connection", "X-Hop",
				"X-Hop", "1",
				"Transfer-Encoding", "chunked",
				"Set-Cookie", "a=b",
			),
			want: fields(
				"Content-Type", "text/event-stream",
				"Content-Encoding", "gzip",
				"X-Request-Id", "req_1",
				"Set-Cookie", "a=b",
			),
		},
		{
			name: "CORS grants in any case dropped",
			src: fields(
				"access-control-allow-origin", "*",
				"ACCESS-CONTROL-ALLOW-CREDENTIALS", "true",
				"Access-Control-Expose-Headers", "X-Request-Id",
				"Access-Controlled", "kept",
			),
			want: fields("Access-Controlled", "kept"),
		},
		{
			name: "Connection names a field in another case",
			src:  fields("connection", "X-HOP, keep-alive", "x-hop", "1", "Keep-Alive", "timeout=5", "X-Request-Id", "req_1"),
			want: fields("X-Request-Id", "req_1"),
		},
		{
			name: "hop-by-hop in any case dropped",
			src: fields(
				"transfer-encoding", "chunked", "CONTENT-LENGTH", "5", "proxy-authenticate", "Basic",
				"Upgrade", "h2c", "trailer", "X-T", "content-type", "text/event-stream",
			),
			want: fields("content-type", "text/event-stream"),
		},
		{
			name: "order, case and duplicates kept",
			src: fields(
				"x-request-id", "req_1",
				"Set-Cookie", "a=b",
				"openai-processing-ms", "12",
				"Set-Cookie", "c=d",
				"Content-Type", "text/event-stream",
			),
			want: fields(
				"x-request-id", "req_1",
				"Set-Cookie", "a=b",
				"openai-processing-ms", "12",
				"Set-Cookie", "c=d",
				"Content-Type", "text/event-stream",
			),
		},
		{name: "none", src: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// inboundFields appends: what dst holds already stays first.
			dst := fields("X-Before", "1")
			got := inboundFields(dst, tt.src)
			want := append(fields("X-Before", "1"), tt.want...)
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// mustDrop are the fields no filter may pass on, in lower case: hop-by-hop
// (RFC 9110, 7.6.1; RFC 9112), credentials, and what our side frames or
// sets itself. Kept apart from hopByHop so that a name lost from that list
// fails the fuzz target.
var mustDrop = map[string]bool{
	"authorization":       true,
	"connection":          true,
	"content-length":      true,
	"expect":              true,
	"host":                true,
	"keep-alive":          true,
	"proxy-authenticate":  true,
	"proxy-authorization": true,
	"proxy-connection":    true,
	"te":                  true,
	"trailer":             true,
	"transfer-encoding":   true,
	"upgrade":             true,
}

// lowerASCII folds A-Z only: field names are tokens, which are ASCII, and
// compare case-insensitively in ASCII (RFC 9110, 5.1).
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzHeaderFilter checks that no header a client can send survives the
// filter if it is hop-by-hop, credential-bearing or named by Connection
// (nor, for responses, a CORS grant), whatever its case, and that the kept
// fields stay in their order.
func FuzzHeaderFilter(f *testing.F) {
	f.Add("Authorization", "Bearer x", "keep-alive, X-A", "X-A")
	f.Add("proxy-authorization", "Basic x", "authorization", "Host")
	f.Add("X-Codex-Turn-Metadata", "{}", "", "Content-Type")
	f.Add("Transfer-Encoding", "chunked", "Te, Trailer", "Upgrade")
	f.Add("x-foo", "1", "X-FOO", "access-control-allow-origin")
	f.Fuzz(func(t *testing.T, name, value, connection, other string) {
		// Our server and the upstream response parser pass on token names
		// only; the filter is not asked about anything else.
		if !httpsyntax.IsToken(name) || !httpsyntax.IsToken(other) {
			return
		}
		in := fields(name, value, other, "v", "Connection", connection)
		named := map[string]bool{}
		for n := range strings.SplitSeq(connection, ",") {
			if n = strings.Trim(n, " \t"); n != "" {
				named[lowerASCII(n)] = true
			}
		}
		mayPass := func(name string, response bool) bool {
			n := lowerASCII(name)
			return !mustDrop[n] && !strings.HasPrefix(n, "proxy-") && !named[n] &&
				!(response && strings.HasPrefix(n, "access-control-"))
		}
		for _, dir := range []struct {
			what     string
			response bool
			out      []httpsyntax.Field
		}{
			{"request", false, outboundFields(in)},
			{"response", true, inboundFields(nil, in)},
		} {
			var want []httpsyntax.Field
			for _, f := range in {
				if mayPass(f.Name, dir.response) {
					want = append(want, f)
				}
			}
			for _, f := range dir.out {
				if !mayPass(f.Name, dir.response) {
					t.Fatalf("%s field %q survived the filter (Connection %q)", dir.what, f.Name, connection)
				}
			}
			// Kept fields keep their order: out is want, or (when a
			// Connection value outside printable ASCII names more than an
			// ASCII reading of it does) a subsequence of want.
			rest := want
			for _, f := range dir.out {
				i := slices.Index(rest, f)
				if i < 0 {
					t.Fatalf("%s fields %q: not the kept fields %q in order", dir.what, dir.out, want)
				}
				rest = rest[i+1:]
			}
			if printableASCII(connection) && len(dir.out) != len(want) {
				t.Fatalf("%s fields: got %q, want %q", dir.what, dir.out, want)
			}
		}
	})
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}
