//go:build unix

package serverinfo

import (
	"os"
	"syscall"
)

// openNoFollow opens path for writing, truncated, created 0o644 if missing.
// O_NOFOLLOW makes the open itself fail on a symlink, with no window between
// a check and the open for someone to swap one in.
func openNoFollow(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		// The errno differs by system (ELOOP on Linux, EMLINK on FreeBSD,
		// EFTYPE on NetBSD), so ask the file system what is there.
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, errSymlink
		}
		return nil, err
	}
	return f, nil
}
