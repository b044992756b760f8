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

// TestNoAllocs: a Read or Write allocates nothing (see conn).
func TestNoAllocs(t *testing.T) {
	c, peer := pair(t)
	msg, buf := []byte("message"), make([]byte, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Read(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per round trip, want 0", allocs)
	}
}
