package peercred

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a client under another uid: with
// dialEnv set it connects to that address and stays connected until the server
// closes.
const dialEnv = "PEERCRED_TEST_DIAL"

const nobody = 65534

func TestMain(m *testing.M) {
	if addr := os.Getenv(dialEnv); addr != "" {
		os.Exit(dialHelper(addr))
	}
	os.Exit(m.Run())
}

func dialHelper(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 2
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, c)
	return 0
}

// listen returns a loopback listener for network ("tcp4" or "tcp6"), skipping
// the test when that loopback address is missing.
func listen(t *testing.T, network string) *net.TCPListener {
	t.Helper()
	addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network]
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// accept accepts one connection within 10 s.
func accept(t *testing.T, ln *net.TCPListener) net.Conn {
	t.Helper()
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connectSelf returns the accepted end of a connection made by this process.
func connectSelf(t *testing.T, ln *net.TCPListener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return accept(t, ln)
}

// connectNobody starts a copy of the test binary as uid and gid nobody, with
// no supplementary groups, connecting to ln, and returns the accepted end.
func connectNobody(t *testing.T, ln *net.TCPListener) net.Conn {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	cmd := exec.Command(nobodyExecutable(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), dialEnv+"="+ln.Addr().String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting client as uid %d: %v", nobody, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return accept(t, ln)
}

// nobodyExecutable copies the test binary where uid nobody may execute it
// (go test builds it in a directory only root can enter).
func nobodyExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "peercred-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "peercred.test")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

func currentUser(t *testing.T) (*user.User, *user.Group) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return u, g
}

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		name    string
		users   []string
		groups  []string
		wantNil bool
		wantErr bool
	}{
		{name: "nothing: no restriction", wantNil: true},
		{name: "empty lists: no restriction", users: []string{}, groups: []string{}, wantNil: true},
		{name: "user name", users: []string{"root"}},
		{name: "uid", users: []string{"0"}},
		{name: "uid without a passwd entry", users: []string{"123456"}},
		{name: "group name", groups: []string{"nogroup"}},
		{name: "gid", groups: []string{"65534"}},
		{name: "unknown user", users: []string{"no-such-user-peercred"}, wantErr: true},
		{name: "unknown group", groups: []string{"no-such-group-peercred"}, wantErr: true},
		{name: "empty user", users: []string{""}, wantErr: true},
		{name: "uid out of range", users: []string{"4294967296"}, wantErr: true},
		{name: "negative gid", groups: []string{"-1"}, wantErr: true},
		{name: "one bad among good", users: []string{"root", "no-such-user-peercred"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy(tc.users, tc.groups)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tc.wantErr)
			}
			if gotNil := p == nil; gotNil != (tc.wantNil || tc.wantErr) {
				t.Fatalf("nil policy: got %v, want %v", gotNil, tc.wantNil || tc.wantErr)
			}
		})
	}
}

func TestAllow(t *testing.T) {
	u, g := currentUser(t)
	type policyCase struct {
		name   string
		users  []string
		groups []string
		want   bool
	}
	clients := []struct {
		name     string
		connect  func(*testing.T, *net.TCPListener) net.Conn
		policies []policyCase
	}{
		{
			name:    "this process",
			connect: connectSelf,
			policies: []policyCase{
				{name: "user name", users: []string{u.Username}, want: true},
				{name: "uid", users: []string{u.Uid}, want: true},
				{name: "primary group name", groups: []string{g.Name}, want: true},
				{name: "primary gid", groups: []string{g.Gid}, want: true},
				{name: "among others", users: []string{"123456", u.Uid}, want: true},
				{name: "other user", users: []string{"123456"}, want: false},
				{name: "other group", groups: []string{"123456"}, want: false},
			},
		},
		{
			name:    "uid nobody",
			connect: connectNobody,
			policies: []policyCase{
				{name: "user nobody", users: []string{"nobody"}, want: true},
				{name: "uid 65534", users: []string{"65534"}, want: true},
				{name: "group nogroup", groups: []string{"nogroup"}, want: true},
				{name: "gid 65534", groups: []string{"65534"}, want: true},
				{name: "user root", users: []string{"root"}, want: false},
				{name: "uid 0", users: []string{"0"}, want: false},
				{name: "group root", groups: []string{"root"}, want: false},
			},
		},
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		for _, cl := range clients {
			t.Run(network+"/"+cl.name, func(t *testing.T) {
				conn := cl.connect(t, listen(t, network))
				for _, pc := range cl.policies {
					t.Run(pc.name, func(t *testing.T) {
						p, err := NewPolicy(pc.users, pc.groups)
						if err != nil {
							t.Fatal(err)
						}
						got, err := p.Allow(conn)
						if err != nil {
							t.Fatalf("Allow: %v", err)
						}
						if got != pc.want {
							t.Fatalf("Allow: got %v, want %v", got, pc.want)
						}
					})
				}
			})
		}
	}
}

// lookups are the two ways of identifying a peer; each must give the same
// answer on its own.
var lookups = []struct {
	name   string
	lookup func(local, remote *net.TCPAddr) (uint32, error)
}{
	{"sock_diag", diagPeerUID},
	{"proc", procPeerUID},
}

func tcpAddrs(c net.Conn) (local, remote *net.TCPAddr) {
	return c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
}

// connectMapped connects to an IPv4 listener from an IPv6 socket, through the
// v4-mapped address, as Java and other dual-stack clients do.
func connectMapped(t *testing.T, ln *net.TCPListener) net.Conn {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("IPv6 socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	sa := &unix.SockaddrInet6{Port: ln.Addr().(*net.TCPAddr).Port}
	copy(sa.Addr[:], net.IPv4(127, 0, 0, 1).To16())
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatalf("connecting to ::ffff:127.0.0.1: %v", err)
	}
	return accept(t, ln)
}

// connectBound connects from a socket bound to the loopback device, as
// curl --interface lo does.
func connectBound(t *testing.T, ln *net.TCPListener) net.Conn {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("IPv4 socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.BindToDevice(fd, "lo"); err != nil {
		t.Skipf("binding a socket to lo: %v", err)
	}
	sa := &unix.SockaddrInet4{Port: ln.Addr().(*net.TCPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatalf("connecting to 127.0.0.1: %v", err)
	}
	return accept(t, ln)
}

func TestLookupUID(t *testing.T) {
	self := uint32(os.Getuid())
	tests := []struct {
		network string
		client  string
		connect func(*testing.T, *net.TCPListener) net.Conn
		want    uint32
	}{
		{"tcp4", "this process", connectSelf, self},
		{"tcp4", "v4-mapped IPv6 socket", connectMapped, self},
		{"tcp4", "socket bound to lo", connectBound, self},
		{"tcp4", "uid nobody", connectNobody, nobody},
		{"tcp6", "this process", connectSelf, self},
		{"tcp6", "uid nobody", connectNobody, nobody},
	}
	for _, tc := range tests {
		t.Run(tc.network+"/"+tc.client, func(t *testing.T) {
			conn := tc.connect(t, listen(t, tc.network))
			for _, lk := range lookups {
				t.Run(lk.name, func(t *testing.T) {
					got, err := lk.lookup(tcpAddrs(conn))
					if err != nil {
						t.Fatalf("lookup: %v", err)
					}
					if got != tc.want {
						t.Fatalf("uid: got %d, want %d", got, tc.want)
					}
				})
			}
		})
	}
}

// A peer that has hung up leaves a closing socket (FIN_WAIT2, later TIME_WAIT,
// reported as uid 0) that no longer speaks for its owner: it is refused even
// though the kernel may still report the owner's uid.
func TestClosedPeerRefused(t *testing.T) {
	ln := listen(t, "tcp4")
	client, err := net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn := accept(t, ln)
	client.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("reading until the client's EOF: %v", err)
	}
	for _, lk := range lookups {
		t.Run(lk.name, func(t *testing.T) {
			uid, err := lk.lookup(tcpAddrs(conn))
			if !errors.Is(err, errNoPeer) {
				t.Fatalf("lookup: got uid %d, error %v, want %v", uid, err, errNoPeer)
			}
		})
	}
	p, err := NewPolicy([]string{"0", strconv.Itoa(os.Getuid())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Allow(conn); ok || err == nil {
		t.Fatalf("Allow: got %v, %v, want false and an error", ok, err)
	}
}

// fakeConn reports the addresses it is given.
type fakeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c fakeConn) LocalAddr() net.Addr  { return c.local }
func (c fakeConn) RemoteAddr() net.Addr { return c.remote }

func TestAllowUnknownPeer(t *testing.T) {
	ln := listen(t, "tcp4")
	local := ln.Addr().(*net.TCPAddr)
	pipe, _ := net.Pipe()
	defer pipe.Close()
	tests := []struct {
		name string
		conn net.Conn
	}{
		{name: "no such connection", conn: fakeConn{local: local, remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}},
		{name: "no such IPv6 connection", conn: fakeConn{local: &net.TCPAddr{IP: net.IPv6loopback, Port: local.Port}, remote: &net.TCPAddr{IP: net.IPv6loopback, Port: 1}}},
		{name: "not TCP", conn: pipe},
	}
	p, err := NewPolicy([]string{strconv.Itoa(os.Getuid()), "65534"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ok, err := p.Allow(tc.conn); ok || err == nil {
				t.Fatalf("Allow: got %v, %v, want false and an error", ok, err)
			}
		})
	}
}

func TestNilPolicyAllowsAll(t *testing.T) {
	var p *Policy
	pipe, _ := net.Pipe()
	defer pipe.Close()
	if ok, err := p.Allow(pipe); !ok || err != nil {
		t.Fatalf("Allow: got %v, %v, want true, nil", ok, err)
	}
}

func BenchmarkAllow(b *testing.B) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	conn, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	u, err := user.Current()
	if err != nil {
		b.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name          string
		users, groups []string
	}{
		{name: "by uid", users: []string{u.Uid}},
		{name: "by cached group", groups: []string{g.Gid}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := NewPolicy(bc.users, bc.groups)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if ok, err := p.Allow(conn); !ok || err != nil {
					b.Fatalf("Allow: got %v, %v, want true, nil", ok, err)
				}
			}
		})
	}
	b.Run("proc fallback", func(b *testing.B) {
		local, remote := tcpAddrs(conn)
		for b.Loop() {
			if _, err := procPeerUID(local, remote); err != nil {
				b.Fatal(err)
			}
		}
	})
}
