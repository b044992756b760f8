//go:build unix

package dump

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a dump directory that another user owns or that is
// group- or world-writable: they could read the dumps, or plant and swap
// files in it.
func checkOwner(dir string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("dump directory %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("dump directory %s is owned by uid %d, not by this user (uid %d)", dir, st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("dump directory %s is group- or world-writable (mode %04o); chmod go-w it or use another", dir, perm)
	}
	return nil
}

// unlinkOpen: a Body's file is unlinked as soon as it is created, so no
// stored body outlives the proxy, even one killed mid-stream.
const unlinkOpen = true
