package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDumpMemoryBounded: with --dump-dir, eight 16 MiB uploads that stall
// before their last byte cost the proxy a bounded amount of memory, not the
// 16 MiB each that a dump holding bodies whole needs (issue 15, finding 4);
// and whether their clients go or the upstream answers before the end,
// unfinished bodies give their memory and descriptors back, each leaving a
// request file marked aborted.
func TestDumpMemoryBounded(t *testing.T) {
	t.Parallel()
	const uploads, size = 8, 16 << 20
	var arrived atomic.Int64
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Early") != "" {
			// The upstream refuses before the end and stops reading.
			io.CopyN(io.Discard, r.Body, 1<<20)
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.Copy(counter{&arrived}, r.Body)
	})
	p := startProxy(t, options{up: up, dumpDir: t.TempDir()})
	if resp, _ := p.post(nil, []byte(`{}`)); resp.StatusCode != http.StatusOK {
		t.Fatalf("first POST: got %d, want 200", resp.StatusCode)
	}
	arrived.Store(0)
	baseRSS, baseFDs := procKB(t, p.pid(), "VmRSS"), countFDs(t, p.pid())
	deadline := time.Now().Add(60 * time.Second)

	// A JSON text that never ends: the dump's checker follows it all along.
	body := []byte(`{"input":"` + strings.Repeat("x", size-len(`{"input":"`)))
	upload := func(header string) net.Conn {
		c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			fmt.Fprintf(c, "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %d\r\n\r\n", header, size+1)
			c.Write(body) // and never the last byte
		}()
		return c
	}
	var stalled []net.Conn
	for range uploads {
		stalled = append(stalled, upload(""))
	}
	for arrived.Load() < uploads*size {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream got %d bytes within 60 s, want %d", arrived.Load(), uploads*size)
		}
		time.Sleep(20 * time.Millisecond)
	}
	peak := procKB(t, p.pid(), "VmHWM")
	t.Logf("RSS %d kB before the uploads, peak %d kB with %d of %d MiB stalled", baseRSS, peak, uploads, size>>20)
	// 16 MiB of chunks for all bodies, and the proxy's own buffers.
	if grown := peak - baseRSS; grown > 32<<10 {
		t.Errorf("peak RSS grew by %d kB with %d stalled uploads, want at most 32 MiB", grown, uploads)
	}
	for _, c := range stalled {
		c.Close()
	}
	waitFDs(t, p.pid(), baseFDs, deadline, "the stalled clients went")

	for range 4 {
		c := upload("X-Early: 1\r\n")
		c.SetReadDeadline(deadline)
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("an upload the upstream refuses early: got %v, %v, want 401", resp, err)
		}
		c.Close()
	}
	waitFDs(t, p.pid(), baseFDs, deadline, "the upstream refused uploads early")

	// Each unfinished body still has its request file, marked aborted.
	var aborted, whole int
	files, _ := filepath.Glob(filepath.Join(p.dumpDir, "*-request.json"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		var f dumpFile
		if err == nil {
			err = json.Unmarshal(data, &f)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f.Aborted {
			aborted++
		} else {
			whole++
		}
	}
	if aborted != uploads+4 || whole != 1 {
		t.Errorf("request files: got %d aborted and %d whole, want %d and 1", aborted, whole, uploads+4)
	}
}

// waitFDs waits until the proxy holds no more descriptors than it did.
func waitFDs(t *testing.T, pid, want int, deadline time.Time, after string) {
	t.Helper()
	for fds := countFDs(t, pid); fds > want; fds = countFDs(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy holds %d descriptors once %s, want %d as before", fds, after, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// procKB reads a "kB" field of /proc/PID/status.
func procKB(t *testing.T, pid int, name string) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(statusField(string(status), name)), " kB"))
	if err != nil {
		t.Fatalf("%s in /proc/%d/status: %v", name, pid, err)
	}
	return kb
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
