// Package rawio reads and writes a socket without waking the Go runtime's
// monitor thread, for relays whose every message arrives when the process
// is idle (issue 11).
//
// When every P is idle, sysmon sleeps until woken, and the first system
// call made through the syscall package (a socket read or write of net)
// wakes it with a futex. A WebSocket relay goes idle between messages, so
// each message paid for that wake on its way through, plus sysmon's running
// on a CPU the receiving client was waiting for: about 20 µs a message on
// the project's 2-core machine, nginx's whole margin over us. A read or
// write that cannot block (the socket is non-blocking; waiting for it is
// the network poller's, through syscall.RawConn) needs none of that.
package rawio

import "net"

// Wrap returns c with Read and Write made as raw system calls where the
// platform allows it (Linux, a connection that is a syscall.Conn) and c
// itself otherwise. Everything else (Close, CloseWrite, deadlines, which
// the reads and writes honour) is c's own. Errors are c's: a closed
// connection is net.ErrClosed, a passed deadline os.ErrDeadlineExceeded,
// the clean end of input io.EOF.
func Wrap(c net.Conn) net.Conn {
	return wrap(c)
}
