package serverinfo

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/serverinfo.golden")

// readFile returns the content of path, failing the test if it cannot.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		rel      string // path under a fresh temporary directory
		existing string // content written before, if not empty
		port     int
		pid      int
		want     string
	}{
		{name: "new file", rel: "info.json", port: 8080, pid: 4242, want: "{\"port\":8080,\"pid\":4242}\n"},
		{name: "parents created", rel: "a/b/c/info.json", port: 1, pid: 2, want: "{\"port\":1,\"pid\":2}\n"},
		{name: "longer stale content replaced", rel: "info.json", existing: strings.Repeat("stale ", 100), port: 65535, pid: 1, want: "{\"port\":65535,\"pid\":1}\n"},
		{name: "empty pre-created file", rel: "info.json", existing: "\n", port: 3, pid: 4, want: "{\"port\":3,\"pid\":4}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.rel)
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(path, tt.port, tt.pid); err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got := readFile(t, path); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server-info.json")
	if err := Write(path, 48213, 31337); err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	got := readFile(t, path)
	golden := filepath.Join("testdata", "serverinfo.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readFile(t, golden); got != want {
		t.Errorf("got %q, want %q (rerun with -update if the change is intended)", got, want)
	}
}

func TestWriteRefusesSymlink(t *testing.T) {
	tests := []struct {
		name   string
		target string // content of the symlink's target; empty: dangling link
	}{
		{name: "to existing file", target: "precious\n"},
		{name: "dangling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "target")
			if tt.target != "" {
				if err := os.WriteFile(target, []byte(tt.target), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(dir, "info.json")
			if err := os.Symlink(target, link); err != nil {
				t.Skipf("cannot create a symlink here: %v", err)
			}
			err := Write(link, 1, 2)
			if err == nil || !strings.Contains(err.Error(), "refusing to write server info through symlink") {
				t.Fatalf("got error %v, want a refusal naming the symlink", err)
			}
			got, rerr := os.ReadFile(target)
			if tt.target == "" {
				if !os.IsNotExist(rerr) {
					t.Errorf("got target %q created (%v), want it absent", got, rerr)
				}
				return
			}
			if string(got) != tt.target {
				t.Errorf("got target %q, want %q", got, tt.target)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{name: "path is a directory", path: dir, want: "opening server info file: "},
		{name: "parent is a file", path: filepath.Join(file, "info.json"), want: "creating directory for server info: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(tt.path, 1, 2)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got error %v, want prefix %q", err, tt.want)
			}
		})
	}
}
