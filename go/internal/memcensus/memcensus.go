// Package memcensus counts the copies of a byte string in the resident memory
// of a live process (Linux only). It is a test tool: the memory-census test (issue 4,
// "Exactly one copy of the key") scans the running proxy for its API key and
// reports how many copies exist, where, and whether they are locked.
//
// Scan reads /proc/PID/smaps for the mappings, /proc/PID/pagemap for which of
// their pages are resident, and /proc/PID/mem for the bytes of resident pages
// only: it never faults in a page the process has not touched, so what it
// reports is what a memory dump of the process would contain. Reading another
// process's memory needs root or CAP_SYS_PTRACE (the proxy is not dumpable).
package memcensus

import (
	"bytes"
	"fmt"
	"strings"
)

// Hit is one copy of the needle.
type Hit struct {
	Addr    uint64 // address of the first byte in the target process
	Mapping string // pathname, or [heap], [stack], [anon], [secretmem], ...
	Perms   string // as in /proc/PID/maps, e.g. "rw-p"
	Locked  bool   // the mapping is mlocked (VmFlags "lo")
	// Before and After hold up to contextBytes bytes around the copy, within
	// the same run of resident pages, with every needle byte (whole or
	// partial copies at the edges) replaced by '*', so that they can be
	// logged to identify the object that holds the copy.
	Before, After []byte
}

// Region is a range of resident memory that could not be read.
type Region struct {
	Start, End uint64 // [Start, End)
	Mapping    string
	Perms      string
	Err        error // for memfd_secret mappings: syscall.EIO
}

// Report is the result of a Scan.
type Report struct {
	Hits []Hit
	// Unreadable lists resident ranges whose reads failed with EIO or
	// EFAULT: memfd_secret mappings read as EIO even for root, by design.
	Unreadable   []Region
	PagesScanned int // resident pages examined, unreadable ones included
}

// contextBytes is how much memory around a hit is kept in Hit.Before and
// Hit.After: enough to see e.g. "Authorization: Bearer " or a Go string header.
const contextBytes = 32

// defaultReadChunk bounds the memory Scan uses for the bytes it reads.
const defaultReadChunk = 1 << 20

// Scan returns every copy of needle in the resident memory of process pid.
// Its memory use is bounded (about 1 MiB) whatever the size of the target.
// It needs root or CAP_SYS_PTRACE when the target is not dumpable; without
// them the error wraps fs.ErrPermission. On systems other than Linux it
// returns an error wrapping errors.ErrUnsupported.
func Scan(pid int, needle []byte) (Report, error) {
	return scan(pid, needle, defaultReadChunk)
}

// mask overwrites with '*' every copy of needle in w, and the partial copies
// cut by either edge of w.
func mask(w, needle []byte) {
	fill := func(b []byte) {
		for i := range b {
			b[i] = '*'
		}
	}
	for i := 0; ; {
		j := bytes.Index(w[i:], needle)
		if j < 0 {
			break
		}
		fill(w[i+j : i+j+len(needle)])
		i += j + len(needle)
	}
	for k := min(len(needle)-1, len(w)); k > 0; k-- {
		if bytes.HasSuffix(w, needle[:k]) {
			fill(w[len(w)-k:])
			break
		}
	}
	for k := min(len(needle)-1, len(w)); k > 0; k-- {
		if bytes.HasPrefix(w, needle[len(needle)-k:]) {
			fill(w[:k])
			break
		}
	}
}

// String summarises the report: how many copies, where, whether locked, with
// their masked context, and the unreadable regions. It never contains the
// needle.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d copies in %d resident pages, %d unreadable regions", len(r.Hits), r.PagesScanned, len(r.Unreadable))
	for _, h := range r.Hits {
		lock := "unlocked"
		if h.Locked {
			lock = "locked"
		}
		fmt.Fprintf(&b, "\n  copy at %#x in %s %s, %s: %q [needle] %q", h.Addr, h.Mapping, h.Perms, lock, h.Before, h.After)
	}
	for _, u := range r.Unreadable {
		fmt.Fprintf(&b, "\n  unreadable %#x-%#x in %s %s: %v", u.Start, u.End, u.Mapping, u.Perms, u.Err)
	}
	return b.String()
}
