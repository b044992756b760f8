//go:build unix

package apikey

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mapAnon maps size bytes of private, zeroed, writable memory.
func mapAnon(size int) ([]byte, error) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("mapping memory for a credential: %w", err)
	}
	return mem, nil
}

// lock locks mem into RAM, or unmaps it and explains RLIMIT_MEMLOCK.
func lock(mem []byte) error {
	// mlock: the key never reaches swap. Fatal: without it the key could
	// be written to disk.
	if err := unix.Mlock(mem); err != nil {
		_ = unix.Munmap(mem)
		return fmt.Errorf("locking credential memory: %w (raise RLIMIT_MEMLOCK, e.g. ulimit -l, to at least %d KiB)", err, (len(mem)+1023)/1024)
	}
	return nil
}

// sealReadOnly makes mem read-only.
func sealReadOnly(mem []byte) error {
	// PROT_READ: a stray write through HeaderLine faults instead of
	// changing the key. Fatal: it never fails on a mapping we own.
	if err := unix.Mprotect(mem, unix.PROT_READ); err != nil {
		return fmt.Errorf("making credential memory read-only: %w", err)
	}
	return nil
}

// free zeroes, unlocks and unmaps mem, on a best-effort basis.
func free(mem []byte) {
	// Zero only once the memory is writable again: writing to a read-only
	// page would crash the process.
	if unix.Mprotect(mem, unix.PROT_READ|unix.PROT_WRITE) == nil {
		clear(mem)
	}
	_ = unix.Munlock(mem)
	_ = unix.Munmap(mem)
}
