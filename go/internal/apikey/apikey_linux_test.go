package apikey

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// mapping is one /proc/self/smaps entry.
type mapping struct {
	start, end uintptr
	perms      string
	path       string
	flags      []string // VmFlags
}

func (m mapping) hasFlag(flag string) bool {
	for _, f := range m.flags {
		if f == flag {
			return true
		}
	}
	return false
}

// readSmaps parses /proc/self/smaps.
func readSmaps(t *testing.T) []mapping {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var maps []mapping
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			maps[len(maps)-1].flags = strings.Fields(rest)
			continue
		}
		fields := strings.Fields(line)
		var m mapping
		if _, err := fmt.Sscanf(fields[0], "%x-%x", &m.start, &m.end); err != nil || strings.HasSuffix(fields[0], ":") {
			continue // a "Key: value" line
		}
		m.perms = fields[1]
		if len(fields) >= 6 {
			m.path = strings.Join(fields[5:], " ")
		}
		maps = append(maps, m)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return maps
}

// mappingOf returns the mapping holding addr.
func mappingOf(t *testing.T, addr uintptr) (mapping, bool) {
	t.Helper()
	for _, m := range readSmaps(t) {
		if m.start <= addr && addr < m.end {
			return m, true
		}
	}
	return mapping{}, false
}

// lockedMappings counts mappings with VmFlags "lo".
func lockedMappings(t *testing.T) int {
	n := 0
	for _, m := range readSmaps(t) {
		if m.hasFlag("lo") {
			n++
		}
	}
	return n
}

func TestMappingFlags(t *testing.T) {
	tests := []struct {
		name        string
		noSecret    bool
		wantBacking string
		wantFlags   []string // lo: locked, dd: no dump, dc: no fork, wf: wipe on fork
	}{
		{name: "memfd_secret", wantBacking: "memfd_secret", wantFlags: []string{"lo", "dd", "dc"}},
		{name: "anonymous fallback", noSecret: true, wantBacking: "mlock", wantFlags: []string{"lo", "dd", "wf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testOnlyNoMemfdSecret = tt.noSecret
			defer func() { testOnlyNoMemfdSecret = false }()
			k, err := Read(strings.NewReader("sk-mapped\n"))
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			defer k.Destroy()
			if got := k.Backing(); got != tt.wantBacking {
				if !tt.noSecret {
					t.Skipf("memfd_secret unavailable on this kernel (backing %q)", got)
				}
				t.Fatalf("got backing %q, want %q", got, tt.wantBacking)
			}
			addr := uintptr(unsafe.Pointer(unsafe.SliceData(k.HeaderLine())))
			m, ok := mappingOf(t, addr)
			if !ok {
				t.Fatalf("got no mapping for the header line at %#x", addr)
			}
			if !strings.HasPrefix(m.perms, "r--") {
				t.Errorf("got perms %q, want r--", m.perms)
			}
			for _, f := range tt.wantFlags {
				if !m.hasFlag(f) {
					t.Errorf("got VmFlags %q, want %q among them", m.flags, f)
				}
			}
			if tt.wantBacking == "memfd_secret" && !strings.HasPrefix(m.path, "/secretmem") {
				t.Errorf("got mapping path %q, want /secretmem", m.path)
			}
		})
	}
}

func TestMemoryFreed(t *testing.T) {
	before := lockedMappings(t)
	for _, input := range []string{"", "\n", "bad key\n", strings.Repeat("k", 2000)} {
		if k, err := Read(strings.NewReader(input)); err == nil {
			k.Destroy()
			t.Fatalf("got a key for %q, want an error", input)
		}
	}
	k, err := Read(strings.NewReader("sk-freed\n"))
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	if got, want := lockedMappings(t), before+1; got != want {
		t.Errorf("got %d locked mappings while a key is held, want %d", got, want)
	}
	k.Destroy()
	if got := lockedMappings(t); got != before {
		t.Errorf("got %d locked mappings after Destroy, want %d", got, before)
	}
}
