//go:build unix && !linux && !darwin

package harden

// apply on the BSDs, Solaris and AIX only disables core files and SIGPIPE:
// there is no portable call to refuse a debugger of the same user
// (FreeBSD's procctl(PROC_TRACE_CTL) is not used).
func apply() error {
	if err := disableCoreFiles(); err != nil {
		return err
	}
	ignoreSIGPIPE()
	return nil
}
