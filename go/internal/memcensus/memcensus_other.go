//go:build !linux

package memcensus

import (
	"errors"
	"fmt"
	"runtime"
)

// scan is only implemented on Linux, which has /proc/PID/pagemap.
func scan(int, []byte, int) (Report, error) {
	return Report{}, fmt.Errorf("memcensus: %w on %s", errors.ErrUnsupported, runtime.GOOS)
}
