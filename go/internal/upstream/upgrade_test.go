package upstream

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// TestUpgradeWireBytes: the upgrade request is a GET with the caller's
// fields, the upgrade fields and the auth line, and no framing field; after
// the 101 the connection is the caller's, bytes the upstream sent right
// behind the head included, half-close included, and it is never pooled.
func TestUpgradeWireBytes(t *testing.T) {
	got := make(chan string, 1)
	srv := newRawServer(t, func(c net.Conn) {
		var rec bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &rec))
		if _, _, err := readRequest(br); err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- rec.String()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nfirst")
		// Echo until the client's half-close, then end.
		io.Copy(c, br)
		c.Close()
	})
	const target = "/v1/responses?api-version=1"
	c := newClient(t, srv.url(target), nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, up, err := c.Upgrade(ctx, "websocket", []httpsyntax.Field{{Name: "Sec-WebSocket-Key", Value: "k"}})
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	defer up.Close()
	if resp.StatusCode != 101 {
		t.Fatalf("status: got %d, want 101", resp.StatusCode)
	}
	want := "GET " + target + " HTTP/1.1\r\nHost: " + srv.ln.Addr().String() + "\r\nSec-WebSocket-Key: k\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" + string(testAuth) + "\r\n"
	if g := within(t, got, wait, "the request"); g != want {
		t.Errorf("wire bytes:\ngot  %q\nwant %q", g, want)
	}
	if _, err := up.Write([]byte(" second")); err != nil {
		t.Fatal(err)
	}
	if err := up.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if all, err := io.ReadAll(up); err != nil || string(all) != "first second" {
		t.Errorf("relayed: got %q, %v; want %q", all, err, "first second")
	}
	if n := pooled(c); n != 0 {
		t.Errorf("pooled connections: got %d, want 0", n)
	}
}

// TestUpgradeRefused: a final answer other than 101 comes with its body and
// no Upgraded, and its connection is closed, not pooled.
func TestUpgradeRefused(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope")
		}
	})
	c := newClient(t, srv.url("/"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, up, err := c.Upgrade(ctx, "websocket", nil)
	if err != nil || up != nil {
		t.Fatalf("Upgrade: got %v, %v; want a response only", up, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 426 || string(body) != "nope" || err != nil {
		t.Errorf("got %d %q %v, want 426 %q", resp.StatusCode, body, err, "nope")
	}
	if n := pooled(c); n != 0 {
		t.Errorf("pooled connections: got %d, want 0", n)
	}
	if _, _, err := c.Upgrade(ctx, "websocket", []httpsyntax.Field{{Name: "connection", Value: "close"}}); err == nil {
		t.Error("Upgrade with a Connection field of the caller's: got nil error")
	}
}
