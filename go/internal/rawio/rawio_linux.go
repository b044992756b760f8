package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// conn is a connection whose Read and Write are unix.RawSyscall: they skip
// entersyscall, which is what wakes sysmon. That is sound only for calls
// that never block, which a read or write of a non-blocking socket is; on
// EAGAIN, RawConn parks the goroutine in the network poller as net does.
type conn struct {
	net.Conn
	rc syscall.RawConn
}

// closeWriter lets the wrapper keep CloseWrite, which net.Conn lacks.
type closeWriter interface{ CloseWrite() error }

// withCloseWrite is conn for a connection that has CloseWrite (*net.TCPConn).
type withCloseWrite struct{ *conn }

func (c withCloseWrite) CloseWrite() error { return c.Conn.(closeWriter).CloseWrite() }

func wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	w := &conn{Conn: c, rc: rc}
	if _, ok := c.(closeWriter); ok {
		return withCloseWrite{w}
	}
	return w
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			case 0:
				n = int(r)
			}
			errno = e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	n := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// opError wraps err as net does, so errors.Is finds net.ErrClosed and
// os.ErrDeadlineExceeded (RawConn reports its own, also as *net.OpError).
func (c *conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
