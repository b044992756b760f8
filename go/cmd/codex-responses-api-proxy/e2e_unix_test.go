//go:build unix

package main_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSignalsExitZero signals each proxy as soon as its server-info file
// appears, as a CI job tearing down early would; several rounds, because a
// handler installed too late loses only a narrow race.
func TestSignalsExitZero(t *testing.T) {
	t.Parallel()
	const rounds = 5
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		for i := range rounds {
			t.Run(fmt.Sprintf("%v %d", sig, i), func(t *testing.T) {
				t.Parallel()
				p := startProxy(t, options{up: countingUpstream(t)})
				p.signal(sig)
				if code := p.waitExit(); code != 0 {
					t.Errorf("exit code after %v: got %d (%v), want 0; stderr:\n%s", sig, code, p.cmd.ProcessState, p.stderr.String())
				}
			})
		}
	}
}

// TestSIGTERMLetsStreamFinish: a stream in flight when SIGTERM arrives runs
// to its clean end, while the proxy stops accepting connections.
func TestSIGTERMLetsStreamFinish(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		sendEvent(w, "response.created", "{}")
		select {
		case <-release:
		case <-time.After(exitTimeout):
			return
		}
		sendEvent(w, "response.completed", "{}")
	})
	p := startProxy(t, options{up: up})
	resp, err := p.client().Post(p.url("/v1/responses"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if ev, err := readEventTimeout(br, ioTimeout); err != nil || ev.name != "response.created" {
		t.Fatalf("first event: got %q, %v", ev.name, err)
	}

	p.signal(syscall.SIGTERM)
	stopped := waitFor(exitTimeout, func() bool {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if !stopped {
		t.Error("proxy still accepting connections after SIGTERM")
	}
	close(release)
	if ev, err := readEventTimeout(br, ioTimeout); err != nil || ev.name != "response.completed" {
		t.Fatalf("second event after SIGTERM: got %q, %v", ev.name, err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("end of stream: got %q, %v; want a clean end", rest, err)
	}
	if code := p.waitExit(); code != 0 {
		t.Errorf("exit code: got %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
}

// TestClosedOutputSurvives: nobody reads the proxy's stderr after the step
// that started it; writing the access log to a closed pipe must not kill it.
func TestClosedOutputSurvives(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	p := startProxy(t, options{up: countingUpstream(t), output: w})
	w.Close()
	for i := range 3 {
		if resp, _ := p.post(nil, []byte("{}")); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: got %d, want %d", i, resp.StatusCode, http.StatusOK)
		}
	}
	if p.exited(100 * time.Millisecond) {
		t.Fatalf("proxy died writing to a closed stderr: exit code %d (%v)", p.exitCode(), p.cmd.ProcessState)
	}
}

func TestServerInfoSymlinkRefused(t *testing.T) {
	t.Parallel()
	const original = "original content\n"
	tests := []struct {
		name     string
		existing bool
	}{
		{name: "link to a file", existing: true},
		{name: "dangling link", existing: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			target := filepath.Join(dir, "target")
			if tt.existing {
				if err := os.WriteFile(target, []byte(original), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(dir, "info.json")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			p := launch(t, options{up: countingUpstream(t), serverInfo: link})
			if code := p.waitExit(); code != 1 {
				t.Errorf("exit code: got %d, want 1", code)
			}
			stderr := p.stderr.String()
			if !strings.Contains(stderr, linePrefix+"error:") || !strings.Contains(stderr, "server info") {
				t.Errorf("stderr: got %q, want an error about the server info file", stderr)
			}
			if strings.Contains(stderr, "listening on") {
				t.Errorf("stderr: got %q, want no server started", stderr)
			}
			got, err := os.ReadFile(target)
			switch {
			case tt.existing && string(got) != original:
				t.Errorf("symlink target: got %q, want it untouched %q", got, original)
			case !tt.existing && !errors.Is(err, os.ErrNotExist):
				t.Errorf("dangling symlink target: got %q, %v; want it not created", got, err)
			}
		})
	}
}

// TestMidStreamFailureResets: when the upstream fails mid-stream, the
// client connection ends with a TCP reset, whatever the client's framing:
// for HTTP/1.0, whose answer of unknown length is delimited by the close,
// a clean FIN would look like a complete response (issue 15).
func TestMidStreamFailureResets(t *testing.T) {
	t.Parallel()
	const event = "event: one\ndata: {}\n\n"
	upstreams := []struct{ name, head string }{
		{name: "upstream chunked", head: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n", len(event), event)},
		{name: "upstream content-length", head: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"partial\":"},
		{name: "upstream close-delimited", head: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + event},
	}
	for _, u := range upstreams {
		for _, proto := range []string{"HTTP/1.0", "HTTP/1.1"} {
			t.Run(u.name+" client "+proto, func(t *testing.T) {
				t.Parallel()
				up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					c, bw, err := http.NewResponseController(w).Hijack()
					if err != nil {
						return
					}
					bw.WriteString(u.head)
					bw.Flush()
					time.Sleep(100 * time.Millisecond)
					if tc, ok := c.(*net.TCPConn); ok {
						tc.SetLinger(0)
					}
					c.Close()
				})
				p := startProxy(t, options{up: up})
				c := p.dial()
				defer c.Close()
				req := "POST /v1/responses " + proto + "\r\nHost: " + p.addr + "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(ioTimeout))
				got, err := io.ReadAll(c)
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("got %v after %q, want ECONNRESET", err, got)
				}
			})
		}
	}
}

// TestWebSocketShutdownGrace: on SIGTERM (Unix only: Windows has no signal
// to send; found under wine, issue 13) an open WebSocket keeps working for
// the grace period, and is then closed; the proxy exits 0.
func TestWebSocketShutdownGrace(t *testing.T) {
	t.Parallel()
	up := wsUpstream(t, false, nil, func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil || c.Write(ctx, typ, msg) != nil {
				return
			}
		}
	})
	p := startProxy(t, options{up: up})
	c, _, err := p.wsDial(t, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	wsWrite(t, c, "before")
	if got := wsRead(t, c); got != "before" {
		t.Fatalf("echo: got %q", got)
	}
	p.signal(syscall.SIGTERM)
	start := time.Now()
	time.Sleep(time.Second)
	wsWrite(t, c, "during the grace period")
	if got := wsRead(t, c); got != "during the grace period" {
		t.Fatalf("echo during the grace period: got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*ioTimeout)
	defer cancel()
	_, _, err = c.Read(ctx)
	elapsed := time.Since(start)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read after the grace period: got %v, want the socket closed", err)
	}
	// The grace period is 5 s (main.shutdownGrace).
	if elapsed < 4*time.Second || elapsed > 5*time.Second+ioTimeout {
		t.Errorf("socket closed %v after SIGTERM, want about 5s", elapsed)
	}
	if code := p.waitExit(); code != 0 {
		t.Errorf("exit code: got %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
}

// TestDumpDirRefused (issue 15, finding 5): a --dump-dir behind a symbolic
// link, or one that others can write to, stops the proxy at startup: exit
// 1, one error line, no server info.
func TestDumpDirRefused(t *testing.T) {
	t.Parallel()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(root, "real")
	open := filepath.Join(root, "open")
	for _, d := range []string{real, open} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir, mention string }{
		{name: "link", dir: link, mention: "is a symbolic link"},
		{name: "under a link", dir: filepath.Join(link, "dumps"), mention: "is a symbolic link"},
		{name: "world-writable", dir: open, mention: "group- or world-writable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refusedAtStartup(t, []string{"--dump-dir", tt.dir}, "", tt.mention)
			if entries, _ := os.ReadDir(real); len(entries) != 0 {
				t.Errorf("%s: got %d entries, want none", real, len(entries))
			}
		})
	}
}
