package main

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestProcStats(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	self := os.Getpid()
	if tree := procTree(self); tree[0] != self || !slices.Contains(tree, cmd.Process.Pid) {
		t.Errorf("got tree %v, want %d first and %d in it", tree, self, cmd.Process.Pid)
	}
	if _, err := cpuTime([]int{self}); err != nil {
		t.Errorf("cpuTime: %v", err)
	}
	if err := resetPeak([]int{self}); err != nil {
		t.Errorf("resetPeak: %v", err)
	}
	rss, hwm, err := memory([]int{self})
	if err != nil || rss <= 0 || hwm < rss {
		t.Errorf("got rss %d, hwm %d, %v, want 0 < rss <= hwm", rss, hwm, err)
	}
}
