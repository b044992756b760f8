//go:build linux && (amd64 || arm64 || riscv64)

package apikey

import "golang.org/x/sys/unix"

// memfdSecret creates a memfd_secret(2) file descriptor, closed on exec.
func memfdSecret() (int, error) {
	// The kernel accepts O_CLOEXEC as the only flag (FD_CLOEXEC would be
	// EINVAL).
	return unix.MemfdSecret(unix.O_CLOEXEC)
}
