// Package harden makes the process a poor source of the API key for other
// processes of the same user and for crash dumps: no core files, no debugger
// attach where the platform allows it, no loader-injection variables passed
// on, and no death by SIGPIPE when nobody reads stdout or stderr any more.
package harden

// Apply hardens the current process. Call it first thing in main, before the
// key is read. An error means a protection the platform promises could not
// be applied; the caller should exit.
func Apply() error {
	return apply()
}
