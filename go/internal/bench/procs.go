package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process of the benchmark: the fake upstream, a proxy,
// nginx. Every proc is stopped by PID before the benchmark exits.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	started time.Time
	done    chan struct{}
}

// procSet remembers every child so that stopAll can stop them all, also
// after a failure or an interrupt.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// start starts cmd with stdout (unless already set) and stderr appended
// to logPath.
func (s *procSet) start(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening log of %s: %w", name, err)
	}
	defer f.Close()
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	cmd.SysProcAttr = childAttr()
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// stopAll stops every child, newest first.
func (s *procSet) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
	s.procs = nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 5 s, then kills the process and any
// descendants it had (nginx workers outlive a killed master).
func (p *proc) stop() {
	if p.exited() {
		return
	}
	tree := procTree(p.pid())
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	for _, pid := range tree[1:] {
		if child, err := os.FindProcess(pid); err == nil {
			_ = child.Kill()
		}
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
}

// logTail returns the end of the child's output, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

// exitErr describes a child that exited while it was being waited for.
func (p *proc) exitErr() error {
	return fmt.Errorf("%s exited early (%v): %s", p.name, p.cmd.ProcessState, p.logTail())
}

// waitServerInfo polls path every 100 µs (bounded by 10 s) until it holds
// a JSON object with a port, and returns that port.
func waitServerInfo(ctx context.Context, p *proc, path string) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			var info struct {
				Port int `json:"port"`
			}
			if json.Unmarshal(b, &info) == nil && info.Port > 0 {
				return info.Port, nil
			}
		}
		if p.exited() {
			return 0, p.exitErr()
		}
		time.Sleep(100 * time.Microsecond)
	}
	return 0, fmt.Errorf("%s: no server info in %s within 10s", p.name, filepath.Base(path))
}

// waitPort polls until 127.0.0.1:port accepts a connection (bounded by 10 s).
func waitPort(ctx context.Context, p *proc, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return nil
		}
		if p.exited() {
			return p.exitErr()
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s: port %d not accepting within 10s", p.name, port)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// errNoReadiness: a command target must say how it reports readiness.
var errNoReadiness = errors.New("command needs {server_info} or {port}")
