package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoWS is a fake upstream in WebSocket mode that echoes messages and
// closes with 1001 on a message "bye".
func echoWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if string(msg) == "bye" {
			c.Close(websocket.StatusGoingAway, "bye")
			return
		}
		if c.Write(ctx, typ, msg) != nil {
			return
		}
	}
}

func dialWS(t *testing.T, h *harness) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+h.addr+"/v1/responses", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{}},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
		t.Fatalf("echo: got %q, %v; want %q", got, err, msg)
	}
}

// TestWebSocketReleases: however a WebSocket ends (the client's close, the
// upstream's, a client that vanishes without a close frame, one that resets
// the connection), the proxy's goroutines and descriptors come back to
// where they were, and it still serves.
func TestWebSocketReleases(t *testing.T) {
	h := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			echoWS(w, r)
			return
		}
		sse(1)(w, r)
	})
	// After one WebSocket, which leaves no pooled connection behind: the
	// server's sweeper is running, as it will be at the end.
	warm := dialWS(t, h)
	echo(t, warm, "warm")
	warm.Close(websocket.StatusNormalClosure, "")
	time.Sleep(100 * time.Millisecond)
	base := takeBaseline()
	ends := map[string]func(c *websocket.Conn){
		"client close": func(c *websocket.Conn) { c.Close(websocket.StatusNormalClosure, "") },
		"upstream close": func(c *websocket.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.Write(ctx, websocket.MessageText, []byte("bye"))
			if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Errorf("after the upstream's close: got %v, want 1001", err)
			}
		},
		"client vanishes": func(c *websocket.Conn) { c.CloseNow() },
	}
	for round := 0; round < 3; round++ {
		for name, end := range ends {
			c := dialWS(t, h)
			echo(t, c, name)
			end(c)
		}
		resetAfterSwitch(t, h)
	}
	base.wait(t, h)
	served(t, h)
	if !strings.Contains(h.logs.String(), "GET /v1/responses 101 ") {
		t.Errorf("no access line for the WebSockets:\n%s", h.logs)
	}
}

// TestWebSocketServerClose: closing the server ends open WebSockets at
// once, both sides.
func TestWebSocketServerClose(t *testing.T) {
	upstreamDone := make(chan struct{})
	h := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		echoWS(w, r)
	})
	c := dialWS(t, h)
	echo(t, c, "open")
	h.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("client read after Close: got %v, want the connection closed", err)
	}
	select {
	case <-upstreamDone:
	case <-time.After(5 * time.Second):
		t.Error("the upstream side is still open after Close")
	}
}

// resetAfterSwitch opens a WebSocket by hand and resets its connection.
func resetAfterSwitch(t *testing.T, h *harness) {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /v1/responses HTTP/1.1\r\nHost: "+h.addr+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: got %v, %v; want 101", resp, err)
	}
	c.(*net.TCPConn).SetLinger(0) // Close sends a reset
	c.Close()
}
