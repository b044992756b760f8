//go:build linux && !(amd64 || arm64 || riscv64)

package apikey

import "golang.org/x/sys/unix"

// memfdSecret reports ENOSYS: x/sys/unix offers memfd_secret(2) only on
// amd64, arm64 and riscv64, so other architectures use the fallback.
func memfdSecret() (int, error) {
	return -1, unix.ENOSYS
}
