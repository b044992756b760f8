package server

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkServe is one keep-alive request after another through the
// server, as the proxy gets them from an agent: a small JSON POST with a
// few headers, answered with a fixed-length body. The client reuses its
// buffers, so allocations are the server's (and the handler's few).
func BenchmarkServe(b *testing.B) {
	const answer = `{"id":"resp_1","object":"response","status":"completed"}`
	ts := startServer(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Date"] = []string{"Sun, 29 Nov 2026 00:00:00 GMT"}
		h["Content-Length"] = []string{"56"}
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
