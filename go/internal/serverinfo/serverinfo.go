// Package serverinfo writes the server-info file: exactly one line
// {"port":N,"pid":N} that launchers poll for to learn where the proxy
// listens and which process holds the socket.
package serverinfo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// errSymlink is what openNoFollow returns for a symlink at path.
var errSymlink = errors.New("symlink")

// Write writes {"port":N,"pid":N} and a newline to path in a single write.
// It creates missing parent directories (0o755), never follows a symlink at
// path, and truncates an existing file in place rather than replacing it, so
// a writable file pre-created in a read-only directory works. A new file gets
// mode 0o644 (less the umask).
func Write(path string, port, pid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating directory for server info: %w", err)
	}
	f, err := openNoFollow(path)
	if errors.Is(err, errSymlink) {
		return fmt.Errorf("refusing to write server info through symlink %q", path)
	}
	if err != nil {
		return fmt.Errorf("opening server info file: %w", err)
	}
	line := fmt.Appendf(nil, "{\"port\":%d,\"pid\":%d}\n", port, pid)
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing server info file: %w", err)
	}
	return nil
}
