//go:build !linux

package peercred

import (
	"fmt"
	"net"
	"runtime"
)

// supported fails: this OS offers no way to learn the owner of the socket at
// the other end of a loopback TCP connection (no sock_diag, no /proc/net/tcp).
func supported() error {
	return fmt.Errorf("restricting connections to users or groups on %s: %w", runtime.GOOS, ErrUnsupported)
}

// peerUID refuses every peer; a Policy cannot be built here, but a zero
// Policy must not allow anyone either.
func peerUID(local, remote *net.TCPAddr) (uint32, error) {
	return 0, supported()
}
