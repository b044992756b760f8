//go:build !unix && !windows

package apikey

import (
	"fmt"
	"runtime"
)

// allocLocked fails: this platform offers no way to lock memory, and the key
// must never be held in memory that can be swapped out.
func allocLocked(int) ([]byte, string, error) {
	return nil, "", fmt.Errorf("locked memory is unsupported on %s", runtime.GOOS)
}

// sealReadOnly is never reached: allocLocked always fails.
func sealReadOnly([]byte) error {
	return fmt.Errorf("read-only memory is unsupported on %s", runtime.GOOS)
}

// free is never reached: allocLocked always fails.
func free([]byte) {}
