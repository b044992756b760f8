package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// FuzzRequestParity reads the same bytes with the server and with
// net/http.ReadRequest, the oracle: whatever the server would hand its
// handler (a head it accepts and a body it reads to its end), net/http must
// accept too, and agree on the method, the target, the version, the Host,
// every field the handler sees (name, value, order among fields of one
// name) and the de-chunked body. The server may be stricter, never looser;
// where it is stricter, SECURITY.md says why (issue 12).
func FuzzRequestParity(f *testing.F) {
	for _, seed := range []string{
		get("/"),
		"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /v1/responses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: t\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\nHost: x\nX-Lf: a\nX-Injected-Lf: yes\n\n",
		"POST / HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: [::1]:80\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"\r\n\r\nGET /a?b=c%20 HTTP/1.1\r\nhost: x\r\nx-a: 1\r\nX-A: 2\r\n\r\n",
		"GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &conn{s: &Server{MaxHeaderBytes: 64 << 10}, br: bufio.NewReader(bytes.NewReader(in)), ctx: context.Background()}
		req, err := c.readRequest()
		if err != nil {
			return
		}
		r := req.r
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the handler's read fails: nothing is forwarded complete
		}
		// The server skips up to four empty lines before a request line
		// (RFC 9112, 2.2); ReadRequest skips none. Listed in SECURITY.md.
		oracleIn := in
		for bytes.HasPrefix(oracleIn, []byte("\r\n")) {
			oracleIn = oracleIn[2:]
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(oracleIn)))
		if err != nil {
			t.Fatalf("server accepts a head net/http refuses: %v", err)
		}
		wantBody, err := io.ReadAll(want.Body)
		if err != nil {
			t.Fatalf("server reads a body net/http refuses: %v", err)
		}
		// net/http takes the host of an absolute-form target over the Host
		// field; the proxy forwards only the origin-form /v1/responses.
		originForm := strings.HasPrefix(r.Target, "/")
		if r.Method != want.Method || r.Target != want.RequestURI || r.ProtoMinor != want.ProtoMinor || (originForm && r.Host != want.Host) {
			t.Fatalf("got %q %q HTTP/1.%d Host %q, net/http %q %q HTTP/1.%d Host %q",
				r.Method, r.Target, r.ProtoMinor, r.Host, want.Method, want.RequestURI, want.ProtoMinor, want.Host)
		}
		if !bytes.Equal(body, wantBody) {
			t.Fatalf("got body %q, net/http %q", body, wantBody)
		}
		compareFields(t, r.Fields, want.Header)
	})
}

// compareFields checks fields against a net/http header: per name, the
// same values in the same order, but for the framing fields net/http
// moves out of its map.
func compareFields(t *testing.T, fields []httpsyntax.Field, h http.Header) {
	t.Helper()
	got := http.Header{}
	for _, f := range fields {
		got[textproto.CanonicalMIMEHeaderKey(f.Name)] = append(got[textproto.CanonicalMIMEHeaderKey(f.Name)], f.Value)
	}
	for _, name := range []string{"Transfer-Encoding", "Content-Length", "Host"} {
		delete(got, name)
		h = h.Clone()
		delete(h, name)
	}
	for name, values := range got {
		if !slices.Equal(values, h[name]) {
			t.Fatalf("field %q: got %q, net/http %q", name, values, h[name])
		}
	}
	for name := range h {
		if _, ok := got[name]; !ok && !strings.EqualFold(name, "Host") {
			t.Fatalf("net/http has field %q that the server does not", name)
		}
	}
}
