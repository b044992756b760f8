package server

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/netlimit"
)

// ended reads c until the server ends the connection (EOF, a reset, or an
// answer and then the end) and fails if that takes longer than within.
func (c *client) ended(within time.Duration) {
	c.tb.Helper()
	c.conn.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c.br)
	if isTimeout(err) {
		c.tb.Fatalf("connection still open after %v", within)
	}
}

// TestBodyTimeout (issue 15, finding 3): clients that declare a body and
// stop sending it, inline-read or streamed, Content-Length or chunked, hold
// their --max-connections slots only until BodyTimeout; then a normal
// client is served.
func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	ln := netlimit.Limit(listen(t), 4)
	ts := serveOn(t, ln, echo, func(s *Server) { s.BodyTimeout = timeout })
	stalls := []string{
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart",
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
	}
	// Each stall's timeout starts when the server has read its head, after
	// this: a slow machine (qemu) can take a large part of the timeout to
	// set the clients up.
	start := time.Now()
	var stalled []*client
	for _, s := range stalls {
		c := dial(t, ts.addr)
		c.write(s)
		stalled = append(stalled, c)
	}
	// The four hold every slot: a fifth client is turned away.
	full := dial(t, ts.addr)
	full.write(get("/"))
	if resp, _ := full.response("GET"); resp.StatusCode != 503 {
		t.Fatalf("a fifth client while four stall: got %d, want 503", resp.StatusCode)
	}
	for i, c := range stalled {
		c.ended(timeout + 3*time.Second)
		if i == 0 && time.Since(start) < timeout-50*time.Millisecond {
			t.Errorf("closed after %v, before the body timeout of %v", time.Since(start), timeout)
		}
	}
	// The slots are back.
	deadline := time.Now().Add(testTimeout)
	for {
		c := dial(t, ts.addr)
		c.write("POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
		resp, body := c.response("POST")
		if resp.StatusCode == 200 {
			if body != "/ok hi" {
				t.Errorf("got %q, want %q", body, "/ok hi")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot back within %v: got %d", testTimeout, resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // the slot is released on close, a moment later
	}
}

// TestBodyTimeoutNotIdle: a body that keeps coming, each byte within the
// timeout, is read to its end however long it takes as a whole.
func TestBodyTimeoutNotIdle(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	ts := startServer(t, echo, func(s *Server) { s.BodyTimeout = timeout })
	c := dial(t, ts.addr)
	c.write("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
	for _, b := range "abcdef" {
		time.Sleep(timeout / 3)
		c.write(string(b))
	}
	if _, body := c.response("POST"); body != "/slow abcdef" {
		t.Errorf("got %q, want %q", body, "/slow abcdef")
	}
}

// TestTimeoutsDuringShutdown (issue 15): while Shutdown waits for a
// streaming response, a client that stalls in its request head is still
// timed out, instead of holding its connection and the shutdown.
func TestTimeoutsDuringShutdown(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	ts := startServer(t, streamHandler(entered, release), func(s *Server) { s.ReadHeaderTimeout = 300 * time.Millisecond })
	_, _, _ = startStream(t, ts, entered)
	slow := dial(t, ts.addr)
	slow.write("POST /v1/responses HTTP/1.1\r\nHost: x\r\n") // never ends
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err != nil {
		t.Fatal(err) // still accepting: the head's clock started
	}
	go ts.Shutdown(t.Context())
	slow.ended(3 * time.Second)
	if strings.Contains(strings.Join(ts.log.all(), "\n"), "panic") {
		t.Errorf("log: %q", ts.log.all())
	}
}
