package harden

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv switches the test binary into child mode; its value names what
// the child does (see TestMain).
const childEnv = "HARDEN_TEST_CHILD"

// report is what a "report" child prints, before and after Apply.
type report struct {
	Dumpable  int    `json:"dumpable"`
	CoreLimit uint64 `json:"core_limit"`
	LDFoo     bool   `json:"ld_foo"`
	Error     string `json:"error,omitempty"`
}

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "report":
		os.Exit(reportChild())
	case "sigpipe":
		os.Exit(sigpipeChild(true))
	case "sigpipe-unhardened":
		os.Exit(sigpipeChild(false))
	}
	fmt.Fprintf(os.Stderr, "unknown %s\n", childEnv)
	os.Exit(2)
}

// snapshot reads the state Apply is meant to change.
func snapshot() report {
	var r report
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		r.Error = err.Error()
	}
	r.Dumpable = dumpable
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		r.Error = err.Error()
	}
	r.CoreLimit = lim.Cur
	_, r.LDFoo = os.LookupEnv("LD_FOO")
	return r
}

// reportChild raises its core limit so that Apply has something to lower,
// then prints [before, after] as JSON.
func reportChild() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err == nil && lim.Max > 0 {
		lim.Cur = lim.Max
		_ = unix.Setrlimit(unix.RLIMIT_CORE, &lim)
	}
	before := snapshot()
	if err := Apply(); err != nil {
		before.Error = "Apply: " + err.Error()
	}
	after := snapshot()
	if err := json.NewEncoder(os.Stdout).Encode([]report{before, after}); err != nil {
		return 1
	}
	return 0
}

// sigpipeChild writes to stdout, which the parent connected to a pipe whose
// read end is closed. It exits 0 on EPIPE; SIGPIPE kills it first if the
// process is not hardened.
func sigpipeChild(harden bool) int {
	if harden {
		if err := Apply(); err != nil {
			fmt.Fprintln(os.Stderr, "Apply:", err)
			return 1
		}
	}
	_, err := os.Stdout.Write([]byte("hello\n"))
	if !errors.Is(err, syscall.EPIPE) {
		fmt.Fprintf(os.Stderr, "got write error %v, want EPIPE\n", err)
		return 1
	}
	return 0
}

// child returns a command running this test binary in child mode.
func child(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	// GORACE: skip the race runtime's 1 s pause at exit.
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "LD_FOO=bar", "GORACE=atexit_sleep_ms=0")
	return cmd
}

func TestApply(t *testing.T) {
	cmd := child(t, "report")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var got []report
	if err := json.Unmarshal(out, &got); err != nil || len(got) != 2 {
		t.Fatalf("got child output %q, want [before, after] JSON", out)
	}
	before, after := got[0], got[1]
	if before.Error != "" || after.Error != "" {
		t.Fatalf("got child errors %q, %q, want none", before.Error, after.Error)
	}
	// The "before" values show that each check below can fail.
	if before.Dumpable != 1 || !before.LDFoo {
		t.Fatalf("got child starting with dumpable=%d LD_FOO set=%t, want 1 and true", before.Dumpable, before.LDFoo)
	}
	if after.Dumpable != 0 {
		t.Errorf("got PR_GET_DUMPABLE %d after Apply, want 0", after.Dumpable)
	}
	if before.CoreLimit == 0 {
		t.Logf("hard RLIMIT_CORE is 0 here, so the core limit check cannot fail")
	}
	if after.CoreLimit != 0 {
		t.Errorf("got RLIMIT_CORE %d after Apply, want 0", after.CoreLimit)
	}
	if after.LDFoo {
		t.Errorf("got LD_FOO still set after Apply, want it removed")
	}
}

func TestSIGPIPEIgnored(t *testing.T) {
	tests := []struct {
		mode       string
		wantSignal bool // killed by SIGPIPE rather than exiting 0
	}{
		{mode: "sigpipe", wantSignal: false},
		// Without Apply, Go dies of SIGPIPE on a write to a broken stdout:
		// this case shows the other one can fail.
		{mode: "sigpipe-unhardened", wantSignal: true},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			cmd := child(t, tt.mode)
			cmd.Stdout = w
			cmd.Stderr = os.Stderr
			err = cmd.Run()
			w.Close()
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok {
				t.Fatalf("got process state %v, want a wait status", cmd.ProcessState)
			}
			killed := ws.Signaled() && ws.Signal() == syscall.SIGPIPE
			if killed != tt.wantSignal {
				t.Errorf("got killed by SIGPIPE %t (%v), want %t", killed, err, tt.wantSignal)
			}
			if !tt.wantSignal && err != nil {
				t.Errorf("got child error %v, want exit 0", err)
			}
		})
	}
}
