package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// FuzzResponseParity reads the same bytes as an answer to a POST with the
// upstream client's response reader and with net/http.ReadResponse, the
// oracle: a response the reader accepts, net/http must accept with the same
// status, the same fields (per name, in order; the framing fields net/http
// and Connection: close, which net/http moves out of its map, aside), and, when the reader reads the body to its
// end, the same decoded body; a connection the reader would reuse net/http
// must find reusable too. The reader may be stricter, never looser; where
// it is, SECURITY.md says why (issue 12).
func FuzzResponseParity(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h httpsyntax.Head
		resp, closeAfter, err := parseResponse(bufio.NewReader(bytes.NewReader(in)), &h)
		if err != nil {
			return
		}
		fields := slices.Clone(resp.Fields) // the trailer reuses h
		body, bodyErr := io.ReadAll(resp.Body)
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), &http.Request{Method: http.MethodPost})
		if err != nil {
			t.Fatalf("reader accepts a head net/http refuses: %v", err)
		}
		if resp.StatusCode != want.StatusCode {
			t.Fatalf("got status %d, net/http %d", resp.StatusCode, want.StatusCode)
		}
		got := http.Header{}
		for _, f := range fields {
			k := textproto.CanonicalMIMEHeaderKey(f.Name)
			got[k] = append(got[k], f.Value)
		}
		wantHeader := want.Header.Clone()
		for _, name := range []string{"Transfer-Encoding", "Content-Length", "Trailer", "Connection"} {
			delete(got, name)
			delete(wantHeader, name)
		}
		for name, values := range got {
			if !slices.Equal(values, wantHeader[name]) {
				t.Fatalf("field %q: got %q, net/http %q", name, values, wantHeader[name])
			}
		}
		for name := range wantHeader {
			if _, ok := got[name]; !ok {
				t.Fatalf("net/http has field %q that the reader does not", name)
			}
		}
		if resp.StatusCode < 200 {
			return
		}
		wantBody, wantErr := io.ReadAll(want.Body)
		if bodyErr == nil {
			if wantErr != nil {
				t.Fatalf("reader reads a body net/http refuses: %v", wantErr)
			}
			if !bytes.Equal(body, wantBody) {
				t.Fatalf("got body %q, net/http %q", body, wantBody)
			}
		}
		if !closeAfter && want.Close {
			t.Fatalf("reader would reuse a connection net/http would close")
		}
	})
}
