package main_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestHelpGolden pins the --help text: the flags are the interface that
// replaces the reference proxy, so a change to them must be deliberate.
func TestHelpGolden(t *testing.T) {
	cmd := exec.Command(binPath, "--help")
	cmd.Env = []string{} // no COLUMNS: kong wraps at its default width
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	golden := filepath.Join("testdata", "help.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("--help changed (run with -update if intended):\ngot:\n%s\nwant:\n%s", got, want)
	}
}
