//go:build unix

package dump

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewRefuses (issue 15, finding 5): a dump directory behind a symbolic
// link, owned by another user, or writable by others is refused before
// anything is written; a missing one is created 0700, parents included.
func TestNewRefuses(t *testing.T) {
	root := realTempDir(t)
	mkdir := func(name string, mode os.FileMode) string {
		p := filepath.Join(root, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	link := func(name, to string) string {
		p := filepath.Join(root, name)
		if err := os.Symlink(to, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		dir     func() string
		mention string // "" means accepted
	}{
		{name: "directory is a link", dir: func() string { return link("link", mkdir("real", 0o700)) }, mention: "symbolic link"},
		{name: "parent is a link", dir: func() string { return filepath.Join(link("plink", mkdir("preal", 0o700)), "dumps") }, mention: "symbolic link"},
		{name: "world-writable", dir: func() string { return mkdir("open", 0o777) }, mention: "group- or world-writable"},
		{name: "group-writable", dir: func() string { return mkdir("group", 0o770) }, mention: "group- or world-writable"},
		{name: "not a directory", dir: func() string {
			p := filepath.Join(root, "file")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, mention: "dump directory"},
		{name: "existing 0755 accepted", dir: func() string { return mkdir("shared", 0o755) }},
		{name: "relative path accepted", dir: func() string {
			t.Chdir(root)
			return "relative/dumps"
		}},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name    string
			dir     func() string
			mention string
		}{name: "owned by another user", dir: func() string {
			p := mkdir("nobody", 0o700)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}, mention: "owned by uid 65534"})
	} else {
		t.Log("not root: the other-owner case needs chown, skipped")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir()
			d, err := New(dir, t.Logf)
			switch {
			case tc.mention == "" && err != nil:
				t.Fatalf("New(%q): got %v, want it accepted", dir, err)
			case tc.mention != "" && err == nil:
				t.Fatalf("New(%q): got a Dumper, want an error mentioning %q", dir, tc.mention)
			case tc.mention != "" && !strings.Contains(err.Error(), tc.mention):
				t.Fatalf("New(%q): got %q, want it to mention %q", dir, err, tc.mention)
			}
			if d != nil && !filepath.IsAbs(d.dir) {
				t.Errorf("dir: got %q, want an absolute path", d.dir)
			}
		})
	}
}

// TestNewCreatesPrivate: missing components are created 0700.
func TestNewCreatesPrivate(t *testing.T) {
	root := realTempDir(t)
	dir := filepath.Join(root, "a", "b")
	if _, err := New(dir, t.Logf); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(root, "a"), dir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o700 {
			t.Errorf("%s: got mode %04o, want 0700", p, got)
		}
	}
}
