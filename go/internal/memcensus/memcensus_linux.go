//go:build linux

package memcensus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// pagemapChunk is how many 8-byte pagemap entries Scan reads at a time.
const pagemapChunk = 4096

// pagemapPresent is bit 63 of a pagemap entry: the page is in RAM.
const pagemapPresent = 1 << 63

// scan is Scan with the size of each /proc/PID/mem read as a parameter, so
// that tests can make matches straddle two reads.
func scan(pid int, needle []byte, readChunk int) (Report, error) {
	if len(needle) == 0 {
		return Report{}, errors.New("memcensus: empty needle")
	}
	maps, err := readSmaps(pid)
	if err != nil {
		return Report{}, err
	}
	pagemap, err := openProc(pid, "pagemap")
	if err != nil {
		return Report{}, err
	}
	defer pagemap.Close()
	mem, err := openProc(pid, "mem")
	if err != nil {
		return Report{}, err
	}
	defer mem.Close()

	s := &scanner{
		mem:      mem,
		pagemap:  pagemap,
		needle:   needle,
		pageSize: uint64(os.Getpagesize()),
		buf:      make([]byte, readChunk+len(needle)-1),
		entries:  make([]byte, 8*pagemapChunk),
	}
	for _, m := range maps {
		// [vvar] and [vsyscall] are kernel pages that /proc/PID/mem cannot
		// read and that never hold process data.
		if strings.HasPrefix(m.name, "[vvar") || m.name == "[vsyscall]" {
			continue
		}
		if err := s.scanMapping(m); err != nil {
			return Report{}, err
		}
	}
	return s.report, nil
}

// mapping is one line of /proc/PID/smaps with its VmFlags.
type mapping struct {
	start, end uint64
	perms      string
	name       string
	locked     bool
}

// readSmaps parses /proc/PID/smaps: the lines of /proc/PID/maps, each
// followed by fields of which only VmFlags matters here.
func readSmaps(pid int) ([]mapping, error) {
	f, err := openProc(pid, "smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	maps, err := parseSmaps(f)
	if err != nil {
		return nil, fmt.Errorf("memcensus: reading %s: %w", f.Name(), err)
	}
	return maps, nil
}

func parseSmaps(r io.Reader) ([]mapping, error) {
	var maps []mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			if len(maps) == 0 {
				return nil, errors.New("VmFlags before any mapping")
			}
			maps[len(maps)-1].locked = slices.Contains(strings.Fields(flags), "lo")
			continue
		}
		// Field lines ("Rss:   4 kB") have a colon in their first word;
		// mapping lines start with "start-end".
		first, _, _ := strings.Cut(line, " ")
		if strings.HasSuffix(first, ":") {
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	return maps, sc.Err()
}

// parseMapsLine parses "start-end perms offset dev inode   pathname".
func parseMapsLine(line string) (mapping, error) {
	// The pathname may hold spaces; the kernel pads before it with spaces.
	parts := strings.SplitN(line, " ", 6)
	if len(parts) < 5 {
		return mapping{}, fmt.Errorf("malformed maps line %q", line)
	}
	lo, hi, ok := strings.Cut(parts[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if !ok || err1 != nil || err2 != nil || end < start {
		return mapping{}, fmt.Errorf("malformed address range in maps line %q", line)
	}
	name := ""
	if len(parts) == 6 {
		name = strings.TrimLeft(parts[5], " ")
	}
	switch name {
	case "":
		name = "[anon]"
	case "/secretmem (deleted)":
		// What the kernel names a memfd_secret(2) mapping.
		name = "[secretmem]"
	}
	return mapping{start: start, end: end, perms: parts[1], name: name}, nil
}

func openProc(pid int, name string) (*os.File, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, name))
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("memcensus: %w (reading another process's memory needs root or CAP_SYS_PTRACE)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("memcensus: %w", err)
	}
	return f, nil
}

// scanner holds the files and the bounded buffers of one Scan.
type scanner struct {
	mem, pagemap *os.File
	needle       []byte
	pageSize     uint64
	buf          []byte // one read chunk plus len(needle)-1 carried bytes
	entries      []byte // pagemap entries
	report       Report
}

// scanMapping finds the runs of resident pages of m in the pagemap and scans
// each run as one contiguous range, so copies that straddle pages are found.
func (s *scanner) scanMapping(m mapping) error {
	runStart, inRun := uint64(0), false
	for addr := m.start; addr < m.end; {
		pages := min((m.end-addr)/s.pageSize, pagemapChunk)
		entries := s.entries[:8*pages]
		if _, err := s.pagemap.ReadAt(entries, int64(addr/s.pageSize*8)); err != nil {
			return fmt.Errorf("memcensus: reading pagemap at %#x: %w", addr, err)
		}
		for i := range pages {
			present := binary.NativeEndian.Uint64(entries[8*i:])&pagemapPresent != 0
			switch {
			case present && !inRun:
				runStart, inRun = addr, true
			case !present && inRun:
				if err := s.scanRun(m, runStart, addr); err != nil {
					return err
				}
				inRun = false
			}
			addr += s.pageSize
		}
	}
	if inRun {
		return s.scanRun(m, runStart, m.end)
	}
	return nil
}

// scanRun reads [start, end), resident pages of m, in chunks. The last
// len(needle)-1 bytes of each chunk are carried in front of the next one: a
// copy straddling two chunks is found once, and no copy fits in the carry.
func (s *scanner) scanRun(m mapping, start, end uint64) error {
	s.report.PagesScanned += int((end - start) / s.pageSize)
	readChunk := uint64(len(s.buf) - (len(s.needle) - 1))
	carry := 0
	for off := start; off < end; {
		n := min(readChunk, end-off)
		got, err := s.mem.ReadAt(s.buf[carry:carry+int(n)], int64(off))
		s.search(m, s.buf[:carry+got], off-uint64(carry), start, end)
		switch {
		case errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EFAULT):
			s.addUnreadable(m, off+uint64(got), end, err)
			return nil
		case errors.Is(err, io.EOF):
			// /proc/PID/mem reads 0 bytes once the address space is gone.
			return fmt.Errorf("memcensus: process exited during the scan (reading %#x)", off)
		case err != nil:
			return fmt.Errorf("memcensus: reading memory at %#x: %w", off, err)
		}
		hay := s.buf[:carry+got]
		carry = min(len(s.needle)-1, len(hay))
		copy(s.buf, hay[len(hay)-carry:])
		off += uint64(got)
	}
	return nil
}

// search records every copy of the needle in hay, which holds the bytes at
// base, inside the resident run [runStart, runEnd) of m.
func (s *scanner) search(m mapping, hay []byte, base, runStart, runEnd uint64) {
	for i := 0; ; {
		j := bytes.Index(hay[i:], s.needle)
		if j < 0 {
			return
		}
		addr := base + uint64(i+j)
		h := Hit{Addr: addr, Mapping: m.name, Perms: m.perms, Locked: m.locked}
		h.Before, h.After = s.context(addr, runStart, runEnd)
		s.report.Hits = append(s.report.Hits, h)
		i += j + 1
	}
}

// context reads the bytes around the copy at addr, clipped to the resident
// run so that no page is faulted in, with every needle byte masked.
func (s *scanner) context(addr, runStart, runEnd uint64) (before, after []byte) {
	lo := max(runStart, addr-min(addr, contextBytes))
	hi := min(runEnd, addr+uint64(len(s.needle))+contextBytes)
	w := make([]byte, hi-lo)
	if _, err := s.mem.ReadAt(w, int64(lo)); err != nil {
		return nil, nil
	}
	mask(w, s.needle)
	k := addr - lo
	return w[:k], w[k+uint64(len(s.needle)):]
}

// addUnreadable records [start, end) of m, merged with the previous region
// when they touch.
func (s *scanner) addUnreadable(m mapping, start, end uint64, err error) {
	u := s.report.Unreadable
	if n := len(u); n > 0 && u[n-1].End == start && u[n-1].Mapping == m.name {
		u[n-1].End = end
		return
	}
	s.report.Unreadable = append(u, Region{Start: start, End: end, Mapping: m.name, Perms: m.perms, Err: err})
}
