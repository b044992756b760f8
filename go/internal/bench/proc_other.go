//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

// errNoProc: CPU and memory figures come from /proc, which only Linux has.
var errNoProc = errors.New("process statistics need Linux /proc")

func procTree(pid int) []int { return []int{pid} }

func cpuTime([]int) (time.Duration, error) { return 0, errNoProc }

func memory([]int) (rss, hwm int64, err error) { return 0, 0, errNoProc }

func resetPeak([]int) error { return errNoProc }

func raiseNoFile() error { return nil }

func childAttr() *syscall.SysProcAttr { return nil }
