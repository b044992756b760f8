package serverinfo

import (
	"os"
	"syscall"
)

// openNoFollow opens path for writing, truncated, created if missing. Windows
// has no O_NOFOLLOW, so it refuses a symlink, junction or other reparse point
// found by Lstat first; a reparse point swapped in between the check and the
// open is not detected.
func openNoFollow(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil {
		attrs, ok := fi.Sys().(*syscall.Win32FileAttributeData)
		if fi.Mode()&os.ModeSymlink != 0 || ok && attrs.FileAttributes&syscall.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
			return nil, errSymlink
		}
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}
