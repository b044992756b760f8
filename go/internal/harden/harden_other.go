//go:build !unix && !windows

package harden

import (
	"fmt"
	"runtime"
)

// apply fails closed: on this platform (Plan 9, WebAssembly) none of the
// protections can be applied, and package apikey cannot lock memory either.
func apply() error {
	return fmt.Errorf("process hardening is unsupported on %s", runtime.GOOS)
}
