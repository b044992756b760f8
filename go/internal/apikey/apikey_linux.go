package apikey

import "golang.org/x/sys/unix"

// testOnlyNoMemfdSecret makes allocLocked skip memfd_secret so that tests
// cover the anonymous-mapping fallback on kernels that have memfd_secret.
var testOnlyNoMemfdSecret bool

// allocLocked maps size bytes of locked, zeroed, writable memory that is
// excluded from core dumps and from fork children.
func allocLocked(size int) ([]byte, string, error) {
	backing := "memfd_secret"
	mem, err := mapSecret(size)
	if err != nil {
		// memfd_secret is missing (ENOSYS before Linux 5.14 or with
		// secretmem.enable=0), refused by a seccomp filter (EPERM), or
		// over RLIMIT_MEMLOCK (EAGAIN): fall back to private anonymous
		// memory, which we lock ourselves. (The kernel locks secret
		// memory itself and refuses mlock on it with ENOMEM.)
		backing = "mlock"
		if mem, err = mapAnon(size); err != nil {
			return nil, "", err
		}
		if err := lock(mem); err != nil {
			return nil, "", err
		}
	}
	// MADV_DONTDUMP: the key stays out of core dumps even if core dumps
	// get enabled again. Best effort: harden.Apply already disables them.
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP)
	if backing == "memfd_secret" {
		// MADV_DONTFORK: a fork child gets no mapping of the shared secret
		// memory (MADV_WIPEONFORK works on private anonymous memory only).
		// Best effort: we never fork.
		_ = unix.Madvise(mem, unix.MADV_DONTFORK)
	} else {
		// MADV_WIPEONFORK: a fork child sees zeroes instead of the key.
		// Best effort: we never fork, and it needs Linux 4.14.
		_ = unix.Madvise(mem, unix.MADV_WIPEONFORK)
	}
	return mem, backing, nil
}

// mapSecret maps size bytes of memfd_secret(2) memory: pages removed from the
// kernel's direct map, unreadable through /proc/PID/mem even by root, and
// locked (VM_LOCKED, charged to RLIMIT_MEMLOCK) by the kernel at mmap time.
// The mapping outlives the file descriptor.
func mapSecret(size int) ([]byte, error) {
	if testOnlyNoMemfdSecret {
		return nil, unix.ENOSYS
	}
	fd, err := memfdSecret()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return nil, err
	}
	return unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}
