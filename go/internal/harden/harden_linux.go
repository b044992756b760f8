package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func apply() error {
	// PR_SET_DUMPABLE=0: no core file, no ptrace attach by the same uid,
	// and /proc/PID/mem, maps and environ owned by root. Fatal.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("making the process non-dumpable (prctl PR_SET_DUMPABLE): %w", err)
	}
	if err := disableCoreFiles(); err != nil {
		return err
	}
	// LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...: a child we start cannot be
	// made to load foreign code. Always succeeds.
	unsetEnvPrefixed("LD_")
	ignoreSIGPIPE()
	return nil
}
