//go:build !linux

package rawio

import "net"

func wrap(c net.Conn) net.Conn { return c }

// Yield does nothing here: Read and Write are the runtime's own.
func Yield() {}
