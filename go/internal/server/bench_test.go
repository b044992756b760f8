package server

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// BenchmarkServe is one keep-alive request after another through the
// server, as the proxy gets them from an agent: a small JSON POST with a
// few headers, answered with a fixed-length body. The client reuses its
// buffers, so allocations are the server's (and the handler's few).
func BenchmarkServe(b *testing.B) {
	const answer = `{"id":"resp_1","object":"response","status":"completed"}`
	fields := []httpsyntax.Field{
		{Name: "Content-Type", Value: "application/json"},
		{Name: "Date", Value: "Sun, 29 Nov 2026 00:00:00 GMT"},
	}
	ts := startServer(b, func(w *Response, r *Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK, int64(len(answer)), fields)
		io.WriteString(w, answer)
	})
	const body = `{"model":"gpt-5","input":"ping","stream":false}`
	req := []byte("POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUser-Agent: bench\r\n" +
		"Content-Type: application/json\r\nAccept: application/json\r\nOriginator: codex_exec\r\n" +
		"Content-Length: 47\r\n\r\n" + body)
	want := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Sun, 29 Nov 2026 00:00:00 GMT\r\n" +
		"Content-Length: 56\r\n\r\n" + answer
	c := dial(b, ts.addr)
	got := make([]byte, len(want))
	b.ReportAllocs()
	for b.Loop() {
		c.conn.SetDeadline(time.Now().Add(testTimeout))
		if _, err := c.conn.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c.conn, got); err != nil || string(got) != want {
			b.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
}
