package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// conn is a connection whose Read and Write are unix.RawSyscall: they skip
// entersyscall, which is what wakes sysmon. That is sound only for calls
// that never block, which a read or write of a non-blocking socket is; on
// EAGAIN, RawConn parks the goroutine in the network poller as net does.
//
// The callbacks are made once, with their state in the conn, not as a
// closure per call: a closure and the variables it captures are three
// allocations, which after an idle spell took 4 us of a message's way
// through (an instrumented build; malloc with cold caches).
type conn struct {
	net.Conn
	rc syscall.RawConn

	rmu    sync.Mutex // one Read at a time owns r
	r      op
	readFn func(uintptr) bool

	wmu     sync.Mutex // one Write at a time owns w
	w       op
	writeFn func(uintptr) bool
}

// op is one Read or Write: the buffer, the bytes done, the error.
type op struct {
	p     []byte
	n     int
	errno syscall.Errno
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
	w.readFn, w.writeFn = w.read, w.write
	if _, ok := c.(closeWriter); ok {
		return withCloseWrite{w}
	}
	return w
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.r = op{p: p}
	err := c.rc.Read(c.readFn)
	n, errno := c.r.n, c.r.errno
	c.r.p = nil
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

// read is Read's callback: false (wait for input) on EAGAIN.
func (c *conn) read(fd uintptr) bool {
	r := &c.r
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			r.n = int(n)
		}
		r.errno = e
		return true
	}
}

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w = op{p: p}
	err := c.rc.Write(c.writeFn)
	n, errno := c.w.n, c.w.errno
	c.w.p = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// write is Write's callback: false (wait for room) on EAGAIN, after
// whatever part of p went.
func (c *conn) write(fd uintptr) bool {
	w := &c.w
	for w.n < len(w.p) {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.p[w.n])), uintptr(len(w.p)-w.n))
		switch e {
		case 0:
			w.n += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
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

// Yield gives the CPU to another thread that can run on it, if any: the
// receiver a write has just woken, which the scheduler often places on the
// writer's CPU and leaves waiting until the writer sleeps. A Go thread takes
// 10 to 20 µs to park a goroutine and go idle, nginx a system call; handing
// over first takes that off the message's way (issue 11). It is a raw system
// call, as Read and Write are, and returns at once if nothing else can run.
func Yield() {
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}
