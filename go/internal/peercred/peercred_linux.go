package peercred

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Layout of <linux/inet_diag.h>, which x/sys/unix does not define:
// struct inet_diag_req_v2 is family, protocol, ext, pad (4 bytes), states
// (u32) and struct inet_diag_sockid (48 bytes: sport, dport as big-endian
// u16, src and dst as 16 bytes each, ifindex u32, cookie 2×u32);
// struct inet_diag_msg is family, state, timer, retrans (4 bytes), the sockid,
// then expires, rqueue, wqueue, uid and inode (u32 each).
const (
	sizeofInetDiagReqV2 = 56
	sizeofInetDiagMsg   = 72
	offsetDiagMsgState  = 1
	offsetDiagMsgUID    = 64
	inetDiagNoCookie    = ^uint32(0) // INET_DIAG_NOCOOKIE: match any socket cookie
	// loopbackIfindex is lo's interface index in every network namespace
	// (LOOPBACK_IFINDEX). The lookup matches a socket bound to no device
	// whatever the index, and one bound to lo (curl --interface lo) only
	// with this index.
	loopbackIfindex = 1
	tcpEstablished  = 1 // TCP_ESTABLISHED in <net/tcp_states.h> and /proc/net/tcp
)

// errNoPeer means the kernel has no established socket for the peer: it is
// gone, or lives in another network namespace. It is final: no fallback can
// know better.
var errNoPeer = errors.New("no established TCP socket for the peer in this network namespace")

func supported() error { return nil }

// peerUID returns the uid owning the socket whose local address is remote and
// whose remote address is local: the other end of a connection we accepted.
// It asks sock_diag netlink, and reads /proc/net/tcp* only if netlink itself
// fails (module not loaded, filtered by a sandbox).
func peerUID(local, remote *net.TCPAddr) (uint32, error) {
	uid, err := diagPeerUID(local, remote)
	if err == nil || errors.Is(err, errNoPeer) {
		return uid, err
	}
	uid, perr := procPeerUID(local, remote)
	if perr != nil {
		return 0, fmt.Errorf("sock_diag: %v; /proc/net: %w", err, perr)
	}
	return uid, nil
}

// diagPeerUID looks the peer socket up by its exact 4-tuple with one
// SOCK_DIAG_BY_FAMILY request (no dump), on a netlink socket of its own so that
// no reply can belong to another lookup.
func diagPeerUID(local, remote *net.TCPAddr) (uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("opening netlink socket: %w", err)
	}
	defer unix.Close(fd)

	ne := binary.NativeEndian
	msg := make([]byte, unix.SizeofNlMsghdr+sizeofInetDiagReqV2)
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(msg[8:], 1) // sequence number; the pid at [12:16] stays 0: the kernel
	req := msg[unix.SizeofNlMsghdr:]
	req[1] = unix.IPPROTO_TCP
	ne.PutUint32(req[4:], 1<<tcpEstablished) // ignored by an exact lookup; the state is checked below
	id := req[8:]
	// The peer's socket has our remote address as its source.
	binary.BigEndian.PutUint16(id[0:], uint16(remote.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(local.Port))
	src, dst := remote.IP.To4(), local.IP.To4()
	if src != nil && dst != nil {
		req[0] = unix.AF_INET
	} else {
		req[0] = unix.AF_INET6
		src, dst = remote.IP.To16(), local.IP.To16()
	}
	copy(id[4:20], src)
	copy(id[20:36], dst)
	ne.PutUint32(id[36:], loopbackIfindex)
	ne.PutUint32(id[40:], inetDiagNoCookie)
	ne.PutUint32(id[44:], inetDiagNoCookie)

	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sending sock_diag request: %w", err)
	}
	// The kernel answers a sock_diag request before sendto returns, so the
	// reply is already queued; MSG_DONTWAIT turns "no reply" into an error
	// instead of a hang.
	buf := make([]byte, 1024)
	n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
	if err != nil {
		return 0, fmt.Errorf("receiving sock_diag reply: %w", err)
	}
	buf = buf[:n]
	if n < unix.SizeofNlMsghdr || int(ne.Uint32(buf[0:])) > n {
		return 0, fmt.Errorf("short sock_diag reply (%d bytes)", n)
	}
	body := buf[unix.SizeofNlMsghdr:ne.Uint32(buf[0:])]
	switch typ := ne.Uint16(buf[4:]); typ {
	case unix.NLMSG_ERROR:
		if len(body) < 4 {
			return 0, fmt.Errorf("short sock_diag error (%d bytes)", len(body))
		}
		errno := unix.Errno(-int32(ne.Uint32(body)))
		if errno == unix.ENOENT {
			return 0, errNoPeer
		}
		return 0, fmt.Errorf("sock_diag request: %w", errno)
	case unix.SOCK_DIAG_BY_FAMILY:
		if len(body) < sizeofInetDiagMsg {
			return 0, fmt.Errorf("short inet_diag_msg (%d bytes)", len(body))
		}
		// Only a connected socket speaks for a live owner: once the peer hung up,
		// its socket is closing (FIN_WAIT*, then a TIME_WAIT mini-socket that
		// reports uid 0), and whatever it sent must not pass as an allowed user's.
		if state := body[offsetDiagMsgState]; state != tcpEstablished {
			return 0, fmt.Errorf("%w (TCP state %d)", errNoPeer, state)
		}
		return ne.Uint32(body[offsetDiagMsgUID:]), nil
	default:
		return 0, fmt.Errorf("unexpected netlink message type %d", typ)
	}
}

// procPeerUID finds the peer socket in /proc/net/tcp and /proc/net/tcp6 (an
// IPv6 socket connected to an IPv4 address is listed in tcp6, v4-mapped). It
// reads every socket of the namespace, so it is only the fallback.
func procPeerUID(local, remote *net.TCPAddr) (uint32, error) {
	type table struct{ path, local, remote string }
	var tables []table
	if src, dst := remote.IP.To4(), local.IP.To4(); src != nil && dst != nil {
		tables = append(tables, table{"/proc/net/tcp", procAddr(src, remote.Port), procAddr(dst, local.Port)})
	}
	tables = append(tables, table{"/proc/net/tcp6", procAddr(remote.IP.To16(), remote.Port), procAddr(local.IP.To16(), local.Port)})
	for _, t := range tables {
		uid, err := scanProcNet(t.path, t.local, t.remote)
		if err == errNoPeer || errors.Is(err, os.ErrNotExist) {
			continue // not listed in this table, or no IPv6 in this kernel
		}
		return uid, err
	}
	return 0, errNoPeer
}

// procAddr formats an address as /proc/net/tcp* does: each 32-bit word of the
// address in network byte order printed as a host-order hex number, then the
// port in hex.
func procAddr(ip net.IP, port int) string {
	var b strings.Builder
	for i := 0; i < len(ip); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(ip[i:]))
	}
	fmt.Fprintf(&b, ":%04X", port)
	return b.String()
}

// scanProcNet returns the uid of the socket with the given local and remote
// addresses (procAddr format) in a /proc/net/tcp* table, or errNoPeer itself
// when no such socket is listed.
func scanProcNet(path, local, remote string) (uint32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != local || f[2] != remote {
			continue
		}
		if st, err := strconv.ParseUint(f[3], 16, 8); err != nil || st != tcpEstablished {
			return 0, fmt.Errorf("%w (TCP state %s)", errNoPeer, f[3])
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("parsing uid %q in %s: %w", f[7], path, err)
		}
		return uint32(uid), nil
	}
	return 0, errNoPeer
}
