package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

const testTimeout = 10 * time.Second

// pair returns both ends of a loopback TCP connection, the first wrapped.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return Wrap(c), peer
}

// TestRoundTrip: bytes both ways, a write far larger than the socket
// buffers (so it waits in the poller for the reader), half-close kept and
// passed on, and the clean end of input as io.EOF.
func TestRoundTrip(t *testing.T) {
	c, peer := pair(t)
	c.SetDeadline(time.Now().Add(testTimeout))
	peer.SetDeadline(time.Now().Add(testTimeout))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write: got %d, %v; want %d, nil", n, err, len(big))
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("the wrapped *net.TCPConn lost CloseWrite")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, want the %d written", len(b), len(big))
	}
	if _, err := peer.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	b, err := io.ReadAll(c)
	if string(b) != "answer" || err != nil {
		t.Fatalf("ReadAll: got %q, %v; want %q, nil", b, err, "answer")
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end: got %d, %v; want 0, io.EOF", n, err)
	}
}

// TestErrors: a read blocked in the poller ends at Close with net.ErrClosed,
// a passed deadline is os.ErrDeadlineExceeded, and a write to a reset
// connection fails.
func TestErrors(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		c, _ := pair(t)
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want os.ErrDeadlineExceeded", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		c, _ := pair(t)
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 8))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		c.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("got %v, want net.ErrClosed", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("Read still blocked after Close")
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close: got %v, want net.ErrClosed", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		c, peer := pair(t)
		peer.(*net.TCPConn).SetLinger(0)
		peer.Close()
		c.SetDeadline(time.Now().Add(testTimeout))
		var err error
		for i := 0; i < 100 && err == nil; i++ { // the reset takes a moment to arrive
			_, err = c.Write([]byte("x"))
			time.Sleep(time.Millisecond)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" {
			t.Fatalf("got %v, want a *net.OpError of a write", err)
		}
	})
}

// TestWrapOther: a connection without a file descriptor is returned as it is.
func TestWrapOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("Wrap changed a net.Pipe connection")
	}
}
