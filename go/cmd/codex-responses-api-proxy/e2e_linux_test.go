package main_test

import (
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the unprivileged user the codex GitHub Action runs Codex as.
const nobody = 65534

func asNobody(t *testing.T) *syscall.SysProcAttr {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the proxy as uid 65534")
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
}

// sharedDir is a fresh directory that uid 65534 can search; if writable,
// uid 65534 owns it.
func sharedDir(t *testing.T, writable bool) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "proxy-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if writable {
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestServerInfoPrecreatedReadOnlyDir: the codex GitHub Action pre-creates
// the file, mode 666, in a directory the proxy's user cannot write.
func TestServerInfoPrecreatedReadOnlyDir(t *testing.T) {
	t.Parallel()
	attr := asNobody(t)
	dir := filepath.Join(sharedDir(t, false), "ro")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "server-info.json")
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, options{up: countingUpstream(t), serverInfo: path, sysProcAttr: attr})
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"port":%d,"pid":%d}`+"\n", p.port, p.pid()); string(got) != want {
		t.Errorf("server info: got %q, want %q", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o666 {
		t.Errorf("server info file: got owner %d mode %v, want the pre-created file (owner 0, mode 0666) written in place", st.Uid, fi.Mode().Perm())
	}
	if resp, _ := p.post(nil, []byte("{}")); resp.StatusCode != http.StatusOK {
		t.Errorf("POST: got %d, want %d", resp.StatusCode, http.StatusOK)
	}
}

// TestHardening runs the proxy as uid 65534 and reads what the kernel says
// about it.
func TestHardening(t *testing.T) {
	t.Parallel()
	attr := asNobody(t)
	// Start the proxy with core dumps allowed, so that it must forbid them
	// itself (the soft limit is often 0 already).
	var core syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &core); err != nil {
		t.Fatal(err)
	}
	if core.Max > 0 {
		raised := core
		raised.Cur = min(core.Max, 1<<20)
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &raised); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_CORE, &core) })
	}
	p := startProxy(t, options{
		up:          countingUpstream(t),
		serverInfo:  filepath.Join(sharedDir(t, true), "server-info.json"),
		sysProcAttr: attr,
	})
	if resp, _ := p.post(nil, []byte("{}")); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: got %d, want %d", resp.StatusCode, http.StatusOK)
	}
	proc := fmt.Sprintf("/proc/%d", p.pid())

	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if uids := statusField(string(status), "Uid"); !strings.HasPrefix(uids, strconv.Itoa(nobody)) {
		t.Fatalf("proxy Uid: got %q, want %d", uids, nobody)
	}
	// The kernel gives root the /proc/PID files of a non-dumpable process
	// (on Linux 6.18 the /proc/PID directory itself keeps the process's uid).
	for _, name := range []string{"status", "environ", "mem", "maps"} {
		fi, err := os.Stat(proc + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 0 {
			t.Errorf("/proc/PID/%s owner: got uid %d, want 0 (PR_SET_DUMPABLE=0)", name, uid)
		}
	}
	lck := statusField(string(status), "VmLck")
	if kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(lck), " kB")); err != nil || kb <= 0 {
		t.Errorf("VmLck: got %q, want more than 0 kB", lck)
	}

	limits, err := os.ReadFile(proc + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(limits), "\n") {
		if strings.HasPrefix(line, "Max core file size") {
			if f := strings.Fields(strings.TrimPrefix(line, "Max core file size")); len(f) < 2 || f[0] != "0" || f[1] != "0" {
				t.Errorf("core limit: got %q, want soft and hard 0", line)
			}
		}
	}

	// LD_* removal is checked inside the process by the harden package's
	// tests: it edits the environment children would inherit, while
	// /proc/PID/environ keeps showing the block the kernel set up at exec,
	// which only root can read once the process is non-dumpable.
}

func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestAllowUserAndGroup: the test process (the peer) is let through only
// when its user or group is named.
func TestAllowUserAndGroup(t *testing.T) {
	t.Parallel()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if me.Uid == strconv.Itoa(nobody) || me.Gid == strconv.Itoa(nobody) {
		t.Skip("the test runs as uid or gid 65534, the one it refuses")
	}
	other, err := user.LookupId(strconv.Itoa(nobody))
	if err != nil {
		t.Skipf("no user %d: %v", nobody, err)
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{name: "my user by name", args: []string{"--allow-user", me.Username}, want: http.StatusOK},
		{name: "my uid", args: []string{"--allow-user", me.Uid}, want: http.StatusOK},
		{name: "other user and mine", args: []string{"--allow-user", other.Username, "--allow-user", me.Username}, want: http.StatusOK},
		{name: "my gid", args: []string{"--allow-group", me.Gid}, want: http.StatusOK},
		{name: "other user only", args: []string{"--allow-user", other.Username}, want: http.StatusForbidden},
		{name: "other gid only", args: []string{"--allow-group", strconv.Itoa(nobody)}, want: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := countingUpstream(t)
			p := startProxy(t, options{up: up, args: append(tt.args, "--http-shutdown")})
			resp, _ := p.raw("POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{}")
			if resp.StatusCode != tt.want {
				t.Errorf("POST: got %d, want %d", resp.StatusCode, tt.want)
			}
			up.checkHits(t, 0, tt.want == http.StatusOK)
			if tt.want != http.StatusForbidden {
				return
			}
			if resp, _ := p.raw("GET /shutdown HTTP/1.1\r\nHost: {addr}\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET /shutdown from a refused user: got %d, want %d", resp.StatusCode, http.StatusForbidden)
			}
			if p.exited(200 * time.Millisecond) {
				t.Errorf("a refused user stopped the proxy; stderr:\n%s", p.stderr.String())
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		t.Parallel()
		p := launch(t, options{args: []string{"--allow-user", "no-such-user-" + randToken(t, 6)}})
		if code := p.waitExit(); code == 0 {
			t.Errorf("exit code: got 0, want non-zero")
		}
	})
}
