//go:build linux

package memcensus

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv switches the re-executed test binary into a target process that
// places markers in its memory; its value is the scenario.
const childEnv = "MEMCENSUS_TEST_CHILD"

// Where the child puts a marker; each place gets its own marker.
const (
	placeHeap   = iota // a Go heap []byte
	placeMlock         // an mmap'd, mlock'd anonymous page
	placeSplit         // an anonymous mapping, straddling a page boundary
	placeSecret        // a memfd_secret(2) mapping
	placeCount
)

var placeNames = [placeCount]string{"heap", "mlock", "split", "secret"}

const markerLen = 32

func TestMain(m *testing.M) {
	if scenario := os.Getenv(childEnv); scenario != "" {
		os.Exit(runChild(scenario))
	}
	os.Exit(m.Run())
}

// fillMarker writes the marker for place, derived from seed, into dst
// (markerLen bytes). The parent and the child compute it the same way.
//
// Why the needle exists in the child only where it is placed: it is derived
// at run time from a random seed, so it is not in the test binary; the seed
// reaches the child through a stdin pipe, not argv or the environment, and
// the child holds the seed, never the marker, anywhere else. Each 8-byte word
// of the marker is computed in a register and stored straight into its final
// place, so no whole copy ever sits in a temporary buffer or on a goroutine
// stack (a hash such as SHA-256 would leave its digest there). The "zeroed"
// scenario checks this: a stray copy would make it fail.
func fillMarker(dst []byte, seed uint64, place int) {
	// splitmix64.
	x := seed ^ (uint64(place+1) * 0x9e3779b97f4a7c15)
	for i := 0; i < markerLen; i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(dst[i:], z^(z>>31))
	}
}

func marker(seed uint64, place int) []byte {
	m := make([]byte, markerLen)
	fillMarker(m, seed, place)
	return m
}

// heapMarker keeps the child's Go heap copy alive.
var heapMarker []byte

// runChild is the target process. It reads an 8-byte seed on stdin, places
// the markers, zeroes them in the "zeroed" scenario, prints
// "ready heap=ADDR mlock=ADDR split=ADDR secret=ADDR|unsupported:ERRNO",
// then sleeps until killed (at most two minutes, should the parent vanish).
func runChild(scenario string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "memcensus child: %v\n", err)
		return 2
	}
	var seedBytes [8]byte
	if _, err := io.ReadFull(os.Stdin, seedBytes[:]); err != nil {
		return fail(err)
	}
	seed := binary.LittleEndian.Uint64(seedBytes[:])
	// Like the proxy: only root (CAP_SYS_PTRACE) may read our memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail(err)
	}
	page := os.Getpagesize()
	anon := func(size int) ([]byte, error) {
		return unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	}

	var places [placeCount][]byte
	heapMarker = make([]byte, markerLen)
	places[placeHeap] = heapMarker

	locked, err := anon(page)
	if err != nil {
		return fail(err)
	}
	if err := unix.Mlock(locked); err != nil {
		return fail(err)
	}
	places[placeMlock] = locked[:markerLen]

	split, err := anon(2 * page)
	if err != nil {
		return fail(err)
	}
	places[placeSplit] = split[page-markerLen/2 : page+markerLen/2]

	secretInfo := ""
	if fd, err := unix.MemfdSecret(0); err != nil {
		secretInfo = "unsupported:" + unix.ErrnoName(errnoOf(err))
	} else {
		if err := unix.Ftruncate(fd, int64(page)); err != nil {
			return fail(err)
		}
		secret, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fail(err)
		}
		places[placeSecret] = secret[:markerLen]
	}

	for place, dst := range places {
		if dst != nil {
			fillMarker(dst, seed, place)
		}
	}
	if scenario == "zeroed" {
		for _, dst := range places {
			clear(dst)
		}
	}

	line := "ready"
	for place, dst := range places {
		v := secretInfo
		if dst != nil {
			v = fmt.Sprintf("%#x", uintptrOf(dst))
		}
		line += fmt.Sprintf(" %s=%s", placeNames[place], v)
	}
	fmt.Println(line)
	time.Sleep(2 * time.Minute)
	return 0
}

func uintptrOf(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	errors.As(err, &errno)
	return errno
}

// target is a running child: its PID, its seed and the addresses it reported.
type target struct {
	pid    int
	seed   uint64
	fields map[string]string
}

// addr returns the address of place, or "" and the reason it was not placed.
func (tg target) addr(t *testing.T, place int) (uint64, string) {
	t.Helper()
	v := tg.fields[placeNames[place]]
	if reason, ok := strings.CutPrefix(v, "unsupported:"); ok {
		return 0, reason
	}
	a, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		t.Fatalf("child reported %s=%q: %v", placeNames[place], v, err)
	}
	return a, ""
}

// startChild re-executes the test binary as a target in scenario and waits
// for it to be ready. It is killed by PID at the end of the test.
func startChild(t *testing.T, scenario string) target {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("memcensus: reading a non-dumpable process's memory needs root (CAP_SYS_PTRACE); not root")
	}
	var seedBytes [8]byte
	if _, err := rand.Read(seedBytes[:]); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+scenario)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(t, cmd) })
	if _, err := stdin.Write(seedBytes[:]); err != nil {
		t.Fatal(err)
	}
	stdin.Close()

	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	var ready string
	select {
	case ready = <-line:
	case <-time.After(10 * time.Second):
		t.Fatal("child not ready after 10s")
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(ready), "ready ")
	if !ok {
		t.Fatalf("child said %q, want a ready line", ready)
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	return target{pid: cmd.Process.Pid, seed: binary.LittleEndian.Uint64(seedBytes[:]), fields: fields}
}

// stopProcess kills cmd by PID and waits for it, for at most 5 seconds.
func stopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("killing pid %d: %v", cmd.Process.Pid, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("pid %d still running 5s after SIGKILL", cmd.Process.Pid)
	}
}

func scanOrFatal(t *testing.T, pid int, needle []byte, readChunk int) Report {
	t.Helper()
	r, err := scan(pid, needle, readChunk)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	t.Logf("readChunk %d: %v", readChunk, r)
	if r.PagesScanned == 0 {
		t.Fatalf("got 0 pages scanned, want some")
	}
	return r
}

func TestScanFindsPlacedCopies(t *testing.T) {
	tg := startChild(t, "placed")
	page := os.Getpagesize()
	tests := []struct {
		name       string
		place      int
		wantLocked bool
	}{
		{name: "Go heap", place: placeHeap, wantLocked: false},
		{name: "mlocked page", place: placeMlock, wantLocked: true},
		{name: "straddling a page boundary", place: placeSplit, wantLocked: false},
	}
	for _, tc := range tests {
		// One page per read makes the straddling copy span two reads too.
		for _, readChunk := range []int{defaultReadChunk, page} {
			t.Run(fmt.Sprintf("%s/readChunk=%d", tc.name, readChunk), func(t *testing.T) {
				want, _ := tg.addr(t, tc.place)
				r := scanOrFatal(t, tg.pid, marker(tg.seed, tc.place), readChunk)
				if len(r.Hits) != 1 {
					t.Fatalf("got %d copies, want 1", len(r.Hits))
				}
				h := r.Hits[0]
				if h.Addr != want {
					t.Errorf("got address %#x, want %#x", h.Addr, want)
				}
				if h.Mapping != "[anon]" {
					t.Errorf("got mapping %q, want %q", h.Mapping, "[anon]")
				}
				if h.Locked != tc.wantLocked {
					t.Errorf("got locked %v, want %v", h.Locked, tc.wantLocked)
				}
			})
		}
	}
}

func TestScanCannotReadSecretMemory(t *testing.T) {
	tg := startChild(t, "placed")
	addr, reason := tg.addr(t, placeSecret)
	if reason != "" {
		t.Skipf("memfd_secret unavailable in this kernel (%s)", reason)
	}
	r := scanOrFatal(t, tg.pid, marker(tg.seed, placeSecret), defaultReadChunk)
	if len(r.Hits) != 0 {
		t.Errorf("got %d copies, want 0: memfd_secret pages should be unreadable", len(r.Hits))
	}
	i := slices.IndexFunc(r.Unreadable, func(u Region) bool { return u.Start <= addr && addr < u.End })
	if i < 0 {
		t.Fatalf("got unreadable regions %v, want one holding %#x", r.Unreadable, addr)
	}
	u := r.Unreadable[i]
	if u.Mapping != "[secretmem]" {
		t.Errorf("got mapping %q, want %q", u.Mapping, "[secretmem]")
	}
	if !errors.Is(u.Err, syscall.EIO) {
		t.Errorf("got error %v, want EIO", u.Err)
	}
}

// TestScanZeroedMarkers proves the markers have no stray copies in the child,
// so that "exactly one" in TestScanFindsPlacedCopies means what it says.
func TestScanZeroedMarkers(t *testing.T) {
	tg := startChild(t, "zeroed")
	for place, name := range placeNames {
		t.Run(name, func(t *testing.T) {
			r := scanOrFatal(t, tg.pid, marker(tg.seed, place), defaultReadChunk)
			if len(r.Hits) != 0 {
				t.Errorf("got %d copies, want 0", len(r.Hits))
			}
		})
	}
}

func TestParseSmaps(t *testing.T) {
	f, err := os.Open("testdata/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseSmaps(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{
		{start: 0x2be692c00000, end: 0x2be693000000, perms: "rw-p", name: "[anon]"},
		{start: 0x7f540083a000, end: 0x7f540083b000, perms: "rw-s", name: "[secretmem]", locked: true},
		{start: 0x7f540083d000, end: 0x7f540083e000, perms: "rw-p", name: "[anon]", locked: true},
		{start: 0x7f5400840000, end: 0x7f5400841000, perms: "r--p", name: "/tmp/a dir/lib so.1"},
		{start: 0x7ffcc2255000, end: 0x7ffcc2276000, perms: "rw-p", name: "[stack]"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseSmapsErrors(t *testing.T) {
	tests := []struct {
		name  string
		smaps string
	}{
		{name: "VmFlags first", smaps: "VmFlags: rd lo\n"},
		{name: "short line", smaps: "1000-2000 rw-p 0\n"},
		{name: "bad range", smaps: "2000-1000 rw-p 00000000 00:00 0 \n"},
		{name: "not hex", smaps: "10g0-2000 rw-p 00000000 00:00 0 \n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := parseSmaps(strings.NewReader(tc.smaps)); err == nil {
				t.Errorf("got %+v and no error, want an error", got)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name   string
		pid    int
		needle []byte
	}{
		{name: "empty needle", pid: os.Getpid(), needle: nil},
		{name: "no such process", pid: 1 << 30, needle: []byte("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Scan(tc.pid, tc.needle); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
}
