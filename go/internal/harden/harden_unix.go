//go:build unix

package harden

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// disableCoreFiles sets RLIMIT_CORE to 0.
func disableCoreFiles() error {
	// RLIMIT_CORE=0: a crash writes no core file holding the key. Fatal:
	// lowering a limit cannot fail unless something is badly wrong.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("disabling core files (setrlimit RLIMIT_CORE): %w", err)
	}
	return nil
}

// unsetEnvPrefixed removes every environment variable whose name starts with
// one of prefixes, so that nothing we might start inherits them. It changes
// Go's copy of the environment; /proc/PID/environ keeps showing the original.
func unsetEnvPrefixed(prefixes ...string) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				os.Unsetenv(name)
			}
		}
	}
}

// ignoreSIGPIPE keeps a write to a closed stdout or stderr from killing the
// process: the write fails with EPIPE instead. The launching CI step may end
// and close our output pipes while we keep serving.
func ignoreSIGPIPE() {
	signal.Ignore(syscall.SIGPIPE)
}
