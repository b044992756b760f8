//go:build unix

package main_test

import (
	"bufio"
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
