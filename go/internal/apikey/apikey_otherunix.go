//go:build unix && !linux

package apikey

// Compared with Linux, this variant has no memfd_secret (the pages stay in
// the kernel's direct map, so root can read them), no MADV_DONTDUMP (core
// dumps are off through harden.Apply's RLIMIT_CORE=0 instead) and no
// MADV_WIPEONFORK (we never fork).

// allocLocked maps size bytes of locked, zeroed, writable memory.
func allocLocked(size int) ([]byte, string, error) {
	mem, err := mapAnon(size)
	if err != nil {
		return nil, "", err
	}
	if err := lock(mem); err != nil {
		return nil, "", err
	}
	return mem, "mlock", nil
}
