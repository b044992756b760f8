package harden

import "golang.org/x/sys/windows"

// apply on Windows re-asserts that a crash is not handed to Windows Error
// Reporting, which could write a dump holding the key. The Go runtime sets
// these error modes at startup, but GOTRACEBACK=wer clears
// SEM_NOGPFAULTERRORBOX to re-enable WER.
//
// Not done, because Windows offers no equivalent without cgo or not at all:
// refusing debuggers of the same user (any process with PROCESS_VM_READ on
// us, e.g. the same user or an administrator, can read the key), excluding
// the key page from dumps configured machine-wide through WER LocalDumps,
// and environment scrubbing (no loader-injection variables exist). Broken
// pipes raise no signal on Windows; a write just fails. The key page itself
// is locked by package apikey (VirtualLock).
func apply() error {
	const modes = windows.SEM_FAILCRITICALERRORS | windows.SEM_NOGPFAULTERRORBOX
	// SetErrorMode returns the previous mode and cannot fail: set ours,
	// then add back whatever else was set.
	prev := windows.SetErrorMode(modes)
	windows.SetErrorMode(prev | modes)
	return nil
}
