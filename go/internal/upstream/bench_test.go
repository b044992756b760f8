package upstream

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// fastServer answers every request with a fixed small JSON, allocating
// little, so the benchmark measures the client.
func fastServer(c net.Conn) {
	const resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
	br := bufio.NewReaderSize(c, 16<<10)
	for {
		length := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if length < 0 {
			return
		}
		if _, err := br.Discard(length); err != nil {
			return
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

// BenchmarkDo: one small JSON POST and its answer over a keep-alive
// plain-TCP connection.
func BenchmarkDo(b *testing.B) {
	srv := newRawServer(b, fastServer)
	c := newClient(b, srv.url("/v1/responses"), nil)
	body := []byte(`{"model":"gpt-5","input":"hello","stream":false}`)
	fields := []httpsyntax.Field{
		{Name: "Content-Type", Value: "application/json"},
		{Name: "Accept", Value: "application/json"},
		{Name: "User-Agent", Value: "codex_cli_rs/0.169.0"},
		{Name: "Originator", Value: "codex_cli_rs"},
	}
	ctx := context.Background()
	var rd bytes.Reader
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		resp, err := c.Do(ctx, fields, &rd, int64(len(body)))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
	}
	if n := srv.accepts.Load(); n != 1 {
		b.Errorf("connections: got %d, want 1", n)
	}
}
