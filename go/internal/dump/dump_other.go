//go:build !unix

package dump

import (
	"fmt"
	"io/fs"
)

// checkOwner only checks that dir is a directory: on Windows access is
// granted by ACLs, which this package does not read (the files inherit the
// directory's; see README, --dump-dir).
func checkOwner(dir string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("dump directory %s is not a directory", dir)
	}
	return nil
}

// unlinkOpen: Windows cannot unlink an open file, so a Body's file keeps
// its name until the Body is closed.
const unlinkOpen = false
