//go:build !linux

package memcensus

import (
	"errors"
	"os"
	"testing"
)

func TestScanUnsupported(t *testing.T) {
	if _, err := Scan(os.Getpid(), []byte("x")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("got %v, want an error wrapping errors.ErrUnsupported", err)
	}
}
