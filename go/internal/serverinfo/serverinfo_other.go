//go:build !unix && !windows

package serverinfo

import (
	"fmt"
	"os"
	"runtime"
)

// openNoFollow fails: this platform (Plan 9, WebAssembly) has no way to open
// a file without following a symlink, and the proxy cannot run here anyway
// (package apikey has no locked memory).
func openNoFollow(string) (*os.File, error) {
	return nil, fmt.Errorf("opening without following symlinks is unsupported on %s", runtime.GOOS)
}
