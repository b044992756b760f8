package rawio

import (
	"net"
	"testing"
)

// TestWrapLinux: on Linux a TCP connection is wrapped, not passed through.
func TestWrapLinux(t *testing.T) {
	c, _ := pair(t)
	if _, ok := c.(*net.TCPConn); ok {
		t.Error("Wrap returned the *net.TCPConn itself")
	}
}
