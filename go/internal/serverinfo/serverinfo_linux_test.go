package serverinfo

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// childPathEnv switches TestWriteReadOnlyDirUnprivileged into the child
// role: write server info to the path it names.
const childPathEnv = "SERVERINFO_TEST_CHILD_PATH"

func TestWriteNewFileMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "info.json")
	if err := Write(path, 1, 2); err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o644); got != want {
		t.Errorf("got mode %v, want %v", got, want)
	}
}

// TestWriteReadOnlyDirUnprivileged reproduces the codex GitHub Action's
// unprivileged mode: a file pre-created with mode 0666 in a directory the
// proxy's user cannot write. Root ignores directory permissions, so the write
// runs in a copy of this test binary under uid/gid 65534.
func TestWriteReadOnlyDirUnprivileged(t *testing.T) {
	if path := os.Getenv(childPathEnv); path != "" {
		// The child: first show the directory really is read-only for us.
		sibling := filepath.Join(filepath.Dir(path), "sibling")
		if err := os.WriteFile(sibling, nil, 0o644); !errors.Is(err, os.ErrPermission) {
			t.Fatalf("got error %v creating a file in the directory, want permission denied", err)
		}
		if err := Write(path, 4321, 8765); err != nil {
			t.Fatalf("got error %v, want nil", err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the writer as uid 65534")
	}
	top, err := os.MkdirTemp("", "serverinfo-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	// The unprivileged child must reach and run its copy of the test binary.
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(top, "serverinfo.test")
	copyFile(t, exe)
	dir := filepath.Join(top, "ro")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "server-info.json")
	if err := os.WriteFile(path, []byte("stale content, longer than the line\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil { // undo the umask
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestWriteReadOnlyDirUnprivileged$")
	cmd.Dir = top
	// GORACE: skip the race runtime's 1 s pause at exit.
	cmd.Env = append(os.Environ(), childPathEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child as uid 65534: %v\n%s", err, out)
	}
	if got, want := readFile(t, path), "{\"port\":4321,\"pid\":8765}\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// copyFile copies the running test binary to dst with mode 0o755.
func copyFile(t *testing.T, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
