package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func apply() error {
	// PT_DENY_ATTACH: debuggers, including those of the same user, cannot
	// attach to read the key. Fatal.
	if err := unix.PtraceDenyAttach(); err != nil {
		return fmt.Errorf("denying debugger attach (ptrace PT_DENY_ATTACH): %w", err)
	}
	if err := disableCoreFiles(); err != nil {
		return err
	}
	// DYLD_INSERT_LIBRARIES and friends load foreign code into a child we
	// start; Malloc* make libmalloc log allocation stacks to a file.
	// Always succeeds.
	unsetEnvPrefixed("DYLD_", "MallocStackLogging", "MallocLogFile")
	ignoreSIGPIPE()
	return nil
}
