package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestIdleWebSocketQuiet: a proxy holding an open WebSocket that carries
// nothing (a Codex session waiting on a tool, for minutes) does not wake
// up. Its threads are switched to 0 to 3 times in two seconds alone, up to
// 12 beside the whole suite under -race (the runtime's own housekeeping);
// the server's sweeper, ticking four times a second for a socket it has
// nothing to do for, made it 72 to 77.
func TestIdleWebSocketQuiet(t *testing.T) {
	t.Parallel()
	up := wsUpstream(t, false, nil, func(ctx context.Context, c *websocket.Conn) {
		typ, msg, err := c.Read(ctx)
		if err == nil {
			c.Write(ctx, typ, msg)
			c.Read(ctx) // until the client's close
		}
	})
	p := startProxy(t, options{up: up})
	c, resp, err := p.wsDial(t, nil)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	wsWrite(t, c, "ping")
	if got := wsRead(t, c); got != "ping" {
		t.Fatalf("got %q, want the echo", got)
	}
	time.Sleep(500 * time.Millisecond) // for the relay to park and a tick to pass
	before := contextSwitches(t, p.pid())
	time.Sleep(2 * time.Second)
	if n := contextSwitches(t, p.pid()) - before; n > 30 {
		t.Errorf("the proxy's threads were switched to %d times in 2 s with an idle WebSocket, want at most 30", n)
	}
}

// contextSwitches sums the voluntary and involuntary context switches of
// every thread of process pid.
func contextSwitches(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("listing the proxy's threads: %v", err)
	}
	total := 0
	for _, path := range tasks {
		status, err := os.ReadFile(path)
		if err != nil {
			continue // a thread that ended
		}
		for _, name := range []string{"voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"} {
			n, err := strconv.Atoi(statusField(string(status), name))
			if err != nil {
				t.Fatalf("%s: %s: %v", path, name, err)
			}
			total += n
		}
	}
	return total
}
