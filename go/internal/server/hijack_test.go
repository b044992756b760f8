package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// echoSwitch switches to "echo" and copies what the client sends back to
// it until the client's end, which it passes on as a half-close.
func echoSwitch(done chan<- error) HandlerFunc {
	return func(w *Response, r *Request) {
		s, err := w.SwitchProtocols("echo", []httpsyntax.Field{
			{Name: "X-Kept", Value: "1"},
			{Name: "Content-Length", Value: "5"}, // dropped: no framing after a 101
			{Name: "Upgrade", Value: "other"},    // dropped: the protocol argument names it
		})
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(s, s)
		if err == nil {
			err = s.CloseWrite()
		}
		done <- err
	}
}

const switchRequest = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"

// TestSwitchProtocols: the 101 carries the handler's fields and the upgrade
// ones, bytes the client sent right behind the head reach the handler, and
// the client's half-close ends the handler's reads; the server then closes
// the connection.
func TestSwitchProtocols(t *testing.T) {
	done := make(chan error, 1)
	ts := startServer(t, echoSwitch(done))
	c := dial(t, ts.addr)
	c.write(switchRequest + "early")
	head, err := c.br.ReadString('\n')
	if err != nil || head != "HTTP/1.1 101 Switching Protocols\r\n" {
		t.Fatalf("status line: got %q, %v", head, err)
	}
	var fields []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		fields = append(fields, strings.TrimSuffix(line, "\r\n"))
	}
	if want := "X-Kept: 1|Connection: Upgrade|Upgrade: echo"; strings.Join(fields, "|") != want {
		t.Errorf("fields: got %q, want %q", strings.Join(fields, "|"), want)
	}
	c.write(" late")
	buf := make([]byte, len("early late"))
	if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != "early late" {
		t.Fatalf("echo: got %q, %v", buf, err)
	}
	c.conn.(interface{ CloseWrite() error }).CloseWrite()
	if rest, err := io.ReadAll(c.br); err != nil || len(rest) != 0 {
		t.Errorf("after the half-close: got %q, %v; want a clean end", rest, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("handler: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("handler still running")
	}
}

// TestSwitchedShutdown: Shutdown waits for a switched connection, which no
// timeout of the server ends, and Close ends it.
func TestSwitchedShutdown(t *testing.T) {
	done := make(chan error, 1)
	ts := startServer(t, echoSwitch(done), func(s *Server) {
		s.ReadHeaderTimeout, s.IdleTimeout = 50*time.Millisecond, 50*time.Millisecond
	})
	c := dial(t, ts.addr)
	c.write(switchRequest)
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v, %v; want 101", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: got %v, want it to wait for the switched connection", err)
	}
	// Well past both timeouts, the connection still carries bytes.
	c.write("still")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != "still" {
		t.Fatalf("echo after Shutdown began: got %q, %v", buf, err)
	}
	ts.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("handler: got a clean end, want the closed connection's error")
		}
	case <-time.After(testTimeout):
		t.Fatal("handler still running after Close")
	}
}

// TestSwitchedSweeperWakes: while the only connection is a switched one the
// sweeper has nothing to do and sleeps; a client that connects then still
// has its head timed out, and the switched connection still carries bytes.
func TestSwitchedSweeperWakes(t *testing.T) {
	const timeout = 100 * time.Millisecond
	done := make(chan error, 1)
	ts := startServer(t, echoSwitch(done), func(s *Server) { s.ReadHeaderTimeout = timeout })
	c := dial(t, ts.addr)
	c.write(switchRequest)
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v, %v; want 101", resp, err)
	}
	time.Sleep(3 * timeout) // ticks that find only the switched connection
	stalled := dial(t, ts.addr)
	stalled.write("GET / HTTP/1.1\r\n") // never a whole head
	stalled.ended(timeout + 2*time.Second)
	c.write("still")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != "still" {
		t.Fatalf("echo: got %q, %v", buf, err)
	}
}

// TestSwitchRefused: nothing switches once a response has begun, nor for
// HTTP/1.0.
func TestSwitchRefused(t *testing.T) {
	got := make(chan error, 2)
	ts := startServer(t, func(w *Response, r *Request) {
		if r.ProtoMinor == 1 {
			w.WriteHeader(http.StatusOK, 0, nil)
		}
		_, err := w.SwitchProtocols("echo", nil)
		got <- err
	})
	for _, req := range []string{switchRequest, strings.Replace(switchRequest, "HTTP/1.1", "HTTP/1.0", 1)} {
		c := dial(t, ts.addr)
		c.write(req)
		if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%q: got %v, %v; want 200", firstLine(req), resp, err)
		}
		if err := <-got; !errors.Is(err, ErrNotSwitchable) {
			t.Errorf("%q: SwitchProtocols: got %v, want ErrNotSwitchable", firstLine(req), err)
		}
	}
}

func firstLine(s string) string { line, _, _ := strings.Cut(s, "\r\n"); return line }
