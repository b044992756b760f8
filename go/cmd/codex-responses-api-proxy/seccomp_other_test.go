//go:build !linux

package main_test

import (
	"fmt"
	"os"
)

// execWithoutMemfdSecret: memfd_secret(2) exists only on Linux.
func execWithoutMemfdSecret(string) {
	fmt.Fprintln(os.Stderr, "e2e: hiding memfd_secret needs Linux")
	os.Exit(1)
}
