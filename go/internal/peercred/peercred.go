// Package peercred restricts which local users may use the proxy.
//
// Every local account can connect to a loopback port, so on a shared machine
// another user could spend the API key through the proxy. A Policy names the
// users and groups allowed to connect; for each accepted connection, Allow asks
// the kernel which uid owns the socket on the other end and checks it against
// the Policy. The lookup is by the exact 4-tuple of the accepted connection,
// which no other socket can hold while we keep the connection open, so there is
// no window in which another process could be mistaken for the peer.
//
// The uid is the one that created the peer's socket: a socket handed to another
// process (inherited, or passed over a Unix socket) keeps its creator's uid, and
// a port forwarder (ssh -L, socat) is seen as the forwarder's user. Group
// membership is that of the uid in the user database (/etc/group), not the
// peer process's current groups.
//
// Only Linux can identify the peer of a TCP connection; elsewhere NewPolicy
// fails with ErrUnsupported rather than run without the restriction asked for.
package peercred

import (
	"errors"
	"fmt"
	"net"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// ErrUnsupported is returned, wrapped with the name of the OS, by NewPolicy
// where the peer of a TCP connection cannot be identified.
var ErrUnsupported = errors.New("identifying the local user of a TCP peer is not supported")

// groupTTL is how long the group ids of a uid are cached: long enough that a
// burst of connections reads /etc/group once, short enough that a change of
// membership takes effect soon.
const groupTTL = 10 * time.Second

// maxCachedUIDs bounds the group cache; it is emptied when full.
const maxCachedUIDs = 1024

// Policy is a set of allowed uids and gids. A nil *Policy allows every peer.
type Policy struct {
	uids map[uint32]struct{}
	gids map[uint32]struct{}

	mu     sync.Mutex
	groups map[uint32]groupEntry // by uid
}

type groupEntry struct {
	gids    []string
	err     error
	expires time.Time
}

// NewPolicy resolves user and group names, or numeric ids, into a Policy.
// A name is looked up first; a string that is no known name but a decimal
// number is taken as an id, which need not exist in the user database. An
// unknown name is an error. Where the peer of a TCP connection cannot be
// identified, NewPolicy returns an error wrapping ErrUnsupported. With no
// users and no groups it returns (nil, nil): no restriction.
func NewPolicy(users, groups []string) (*Policy, error) {
	if len(users) == 0 && len(groups) == 0 {
		return nil, nil
	}
	if err := supported(); err != nil {
		return nil, err
	}
	uids, err := resolve("user", users, func(name string) (string, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
	if err != nil {
		return nil, err
	}
	gids, err := resolve("group", groups, func(name string) (string, error) {
		g, err := user.LookupGroup(name)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
	if err != nil {
		return nil, err
	}
	return &Policy{uids: uids, gids: gids, groups: map[uint32]groupEntry{}}, nil
}

// resolve maps each name to its numeric id with lookup, falling back to the
// name itself when it is a decimal number.
func resolve(kind string, names []string, lookup func(string) (string, error)) (map[uint32]struct{}, error) {
	ids := make(map[uint32]struct{}, len(names))
	for _, name := range names {
		id, err := lookup(name)
		if err != nil {
			if _, perr := strconv.ParseUint(name, 10, 32); perr != nil {
				return nil, fmt.Errorf("unknown %s %q: %w", kind, name, err)
			}
			id = name
		}
		n, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s %q has id %q, not a number: %w", kind, name, id, err)
		}
		ids[uint32(n)] = struct{}{}
	}
	return ids, nil
}

// Allow reports whether the process on the other end of conn, a loopback TCP
// connection accepted by us, runs as an allowed uid, or as a uid whose primary
// or supplementary groups include an allowed gid. A peer that cannot be
// identified (not TCP, not found in our network namespace, no longer
// connected, unsupported OS) is not allowed, and the error says why.
func (p *Policy) Allow(conn net.Conn) (bool, error) {
	if p == nil {
		return true, nil
	}
	local, lok := conn.LocalAddr().(*net.TCPAddr)
	remote, rok := conn.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return false, fmt.Errorf("not a TCP connection: %s", conn.RemoteAddr().Network())
	}
	uid, err := peerUID(local, remote)
	if err != nil {
		return false, fmt.Errorf("finding the owner of the peer socket: %w", err)
	}
	if _, ok := p.uids[uid]; ok {
		return true, nil
	}
	if len(p.gids) == 0 {
		return false, nil
	}
	gids, err := p.groupsOf(uid)
	if err != nil {
		return false, fmt.Errorf("looking up the groups of uid %d: %w", uid, err)
	}
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			continue // not a numeric gid: cannot match one of ours
		}
		if _, ok := p.gids[uint32(n)]; ok {
			return true, nil
		}
	}
	return false, nil
}

// groupsOf returns the gids of uid from the user database, cached for groupTTL
// so that a flood of connections does not re-read /etc/group each time.
func (p *Policy) groupsOf(uid uint32) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if e, ok := p.groups[uid]; ok && now.Before(e.expires) {
		return e.gids, e.err
	}
	var e groupEntry
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err == nil {
		e.gids, err = u.GroupIds()
	}
	e.err = err
	e.expires = now.Add(groupTTL)
	if len(p.groups) >= maxCachedUIDs {
		clear(p.groups)
	}
	p.groups[uid] = e
	return e.gids, e.err
}
