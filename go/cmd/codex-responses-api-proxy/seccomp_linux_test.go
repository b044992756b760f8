//go:build linux

package main_test

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// execWithoutMemfdSecret runs the proxy with memfd_secret(2) failing with
// ENOSYS, as on kernels without it, so the tests can see the fallback (an
// mlock'ed anonymous mapping) through the real binary. The test binary
// installs a seccomp filter on its own thread and execs the proxy from that
// thread; the filter carries over the exec. It never returns.
func execWithoutMemfdSecret(bin string) {
	runtime.LockOSThread()
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // the syscall number
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_MEMFD_SECRET, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no_new_privs: %v\n", err)
		os.Exit(1)
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: seccomp: %v\n", err)
		os.Exit(1)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if len(kv) < len(noMemfdSecretEnv) || kv[:len(noMemfdSecretEnv)] != noMemfdSecretEnv {
			env = append(env, kv)
		}
	}
	err := unix.Exec(bin, append([]string{bin}, os.Args[1:]...), env)
	fmt.Fprintf(os.Stderr, "e2e: exec %s: %v\n", bin, err)
	os.Exit(1)
}
