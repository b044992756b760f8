package netlimit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

const request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serve runs an http.Server answering "ok" behind Limit(max).
func serve(t *testing.T, max int) *listener {
	t.Helper()
	l := Limit(listen(t), max).(*listener)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l
}

func dial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// roundTrip sends request on c, reads the answer until EOF (not a reset)
// within 5 s, and checks its status and body. It returns the response and how
// long the exchange took. The bound is generous: under wine, the first
// exchange after TestFlood's thousand connections takes up to 1.1 s.
func roundTrip(t *testing.T, c net.Conn, wantStatus int, wantBody string) (*http.Response, time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetDeadline(start.Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	data, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading response until EOF: got %v after %q", err, data)
	}
	elapsed := time.Since(start)
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
	if err != nil {
		t.Fatalf("parsing response %q: %v", data, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body of %q: %v", data, err)
	}
	if resp.StatusCode != wantStatus {
		t.Errorf("status: got %d, want %d", resp.StatusCode, wantStatus)
	}
	if string(body) != wantBody {
		t.Errorf("body: got %q, want %q", body, wantBody)
	}
	return resp, elapsed
}

func TestLimit(t *testing.T) {
	l := serve(t, 2)
	held := []net.Conn{dial(t, l.Addr()), dial(t, l.Addr())}
	waitFor(t, "2 connections accepted", func() bool { return len(l.slots) == 2 })

	t.Run("over the limit: 503 then EOF", func(t *testing.T) {
		resp, elapsed := roundTrip(t, dial(t, l.Addr()), http.StatusServiceUnavailable, "too many connections\n")
		if !resp.Close {
			t.Errorf("Connection: close: got %v, want true", resp.Close)
		}
		// EOF comes right after the 503, not when the server stops reading.
		if elapsed >= lingerTimeout {
			t.Errorf("503 and EOF took %v, want less than %v", elapsed, lingerTimeout)
		}
	})
	t.Run("slot freed by close is reused", func(t *testing.T) {
		held[0].Close()
		waitFor(t, "a slot to be freed", func() bool { return len(l.slots) == 1 })
		roundTrip(t, dial(t, l.Addr()), http.StatusOK, "ok")
	})
}

func TestCloseReleasesOnce(t *testing.T) {
	l := Limit(listen(t), 2).(*listener)
	var conns []net.Conn
	for range 2 {
		dial(t, l.Addr())
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		conns = append(conns, c)
	}
	for i, want := range []int{1, 1, 1} {
		conns[0].Close()
		if got := len(l.slots); got != want {
			t.Fatalf("open after close #%d: got %d, want %d", i+1, got, want)
		}
	}
	conns[1].Close()
	if got := len(l.slots); got != 0 {
		t.Fatalf("open after closing both: got %d, want 0", got)
	}
}

func TestCloseWrite(t *testing.T) {
	l := Limit(listen(t), 1)
	client := dial(t, l.Addr())
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer c.Close()
	if err := c.(closeWriter).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	client.SetDeadline(time.Now().Add(time.Second))
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read after CloseWrite: got %d, %v, want EOF", n, err)
	}
	// The other direction stays open.
	if _, err := io.WriteString(client, "x"); err != nil {
		t.Fatalf("client write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "x" {
		t.Fatalf("server read: got %q, %v, want %q", buf, err, "x")
	}
}

func TestNoLimit(t *testing.T) {
	ln := listen(t)
	for _, max := range []int{0, -1} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			if got := Limit(ln, max); got != ln {
				t.Fatalf("Limit(l, %d): got %T, want the listener itself", max, got)
			}
		})
	}
}

// openFDs counts this process's open descriptors on Linux, or returns -1.
// Elsewhere /proc/self/fd is not ours even where it exists: under wine, a
// Windows program reads it through drive Z: and sees wine's own descriptor
// cache, which lags behind closed sockets (issue 13).
func openFDs() int {
	if runtime.GOOS != "linux" {
		return -1
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// A thousand connections opened and dropped at once, some after half a
// request, leave nothing behind, and the server still serves.
func TestFlood(t *testing.T) {
	const total, batch = 1000, 50
	l := serve(t, 8)
	roundTrip(t, dial(t, l.Addr()), http.StatusOK, "ok")
	waitFor(t, "the first connection to close", func() bool { return len(l.slots) == 0 })
	goroutines, fds := runtime.NumGoroutine(), openFDs()

	var failed sync.Map
	for start := 0; start < total; start += batch {
		var wg sync.WaitGroup
		for i := start; i < start+batch; i++ {
			wg.Go(func() {
				c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
				if err != nil {
					failed.Store(i, err)
					return
				}
				if i%2 == 0 {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					io.WriteString(c, request[:20])
				}
				c.Close()
			})
		}
		wg.Wait()
	}
	failed.Range(func(i, err any) bool {
		t.Errorf("dial #%d: %v", i, err)
		return true
	})

	waitFor(t, "every connection to be released", func() bool { return len(l.slots) == 0 && len(l.lingering) == 0 })
	waitFor(t, fmt.Sprintf("goroutines back to %d", goroutines), func() bool { return runtime.NumGoroutine() <= goroutines })
	if fds >= 0 {
		waitFor(t, fmt.Sprintf("open descriptors back to %d", fds), func() bool { return openFDs() <= fds })
	}
	roundTrip(t, dial(t, l.Addr()), http.StatusOK, "ok")
}
