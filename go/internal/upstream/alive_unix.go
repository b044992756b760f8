//go:build unix

package upstream

import "syscall"

// alive reports whether an idle connection can carry a request: the
// upstream has neither closed it (EOF) nor sent anything unasked (which
// would be read as the next response). One non-blocking MSG_PEEK, no wait.
func (pc *conn) alive() bool {
	sc, ok := pc.raw.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}
