package apikey

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Compared with Linux, Windows has no equivalent of memfd_secret or
// MADV_DONTDUMP: an administrator, a debugger of the same user or a crash
// dump configured through Windows Error Reporting can still read the page.
// VirtualLock keeps it out of the page file.

// allocLocked allocates size bytes of locked, zeroed, writable memory.
func allocLocked(size int) ([]byte, string, error) {
	addr, err := windows.VirtualAlloc(0, uintptr(size), windows.MEM_COMMIT|windows.MEM_RESERVE, windows.PAGE_READWRITE)
	if err != nil {
		return nil, "", fmt.Errorf("allocating memory for a credential: %w", err)
	}
	// VirtualLock: the key never reaches the page file. Fatal: without it
	// the key could be written to disk.
	if err := windows.VirtualLock(addr, uintptr(size)); err != nil {
		_ = windows.VirtualFree(addr, 0, windows.MEM_RELEASE)
		return nil, "", fmt.Errorf("locking credential memory: %w", err)
	}
	// addr is memory VirtualAlloc owns, outside the Go heap; reading it
	// through &addr keeps vet's uintptr-to-pointer check satisfied.
	mem := unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), size)
	return mem, "VirtualLock", nil
}

// sealReadOnly makes mem read-only.
func sealReadOnly(mem []byte) error {
	// PAGE_READONLY: a stray write through HeaderLine faults instead of
	// changing the key. Fatal: it never fails on memory we own.
	var old uint32
	if err := windows.VirtualProtect(addrOf(mem), uintptr(len(mem)), windows.PAGE_READONLY, &old); err != nil {
		return fmt.Errorf("making credential memory read-only: %w", err)
	}
	return nil
}

// free zeroes, unlocks and releases mem, on a best-effort basis.
func free(mem []byte) {
	addr := addrOf(mem)
	// Zero only once the memory is writable again: writing to a read-only
	// page would crash the process.
	var old uint32
	if windows.VirtualProtect(addr, uintptr(len(mem)), windows.PAGE_READWRITE, &old) == nil {
		clear(mem)
	}
	_ = windows.VirtualUnlock(addr, uintptr(len(mem)))
	_ = windows.VirtualFree(addr, 0, windows.MEM_RELEASE)
}

// addrOf returns the address of mem's first byte.
func addrOf(mem []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
}
