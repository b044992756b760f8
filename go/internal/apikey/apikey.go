// Package apikey reads the OpenAI API key from standard input straight into
// locked memory outside the Go heap and keeps it there, as the ready-made
// header line "Authorization: Bearer <key>\r\n", read-only until Destroy.
//
// The key bytes never pass through a Go-heap buffer: Read hands a slice of the
// locked mapping to r.Read, so os.Stdin's read(2) lands in it directly. Read
// never includes key bytes in a returned error.
package apikey

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// maxLen is the longest key Read accepts, in bytes.
const maxLen = 1024

const prefix = "Authorization: Bearer "

// maxEmptyReads bounds how often a reader may return (0, nil) in a row, as
// bufio does, so that a misbehaving reader cannot spin Read forever.
const maxEmptyReads = 100

// The sentinel errors name the rule the key broke and never its bytes.
var (
	ErrEmpty   = errors.New("API key is empty")
	ErrTooLong = fmt.Errorf("API key is longer than %d bytes", maxLen)
	ErrInvalid = errors.New("API key must match ^[A-Za-z0-9_-]+$")
)

// Key holds "Authorization: Bearer <key>\r\n" in locked, read-only memory
// outside the Go heap. The zero Key holds nothing.
type Key struct {
	mem     []byte // the whole locked mapping
	n       int    // length of the header line at the start of mem
	backing string
}

// Read reads one line from r straight into locked memory and returns it as a
// Key. It calls r.Read with slices of that memory until it sees a newline or
// EOF and never calls r.Read again once a newline has arrived; bytes after the
// newline are zeroed. One trailing CR is removed. The key must be 1 to 1024
// bytes of [A-Za-z0-9_-]; otherwise Read zeroes and frees the memory and
// returns ErrEmpty, ErrTooLong or ErrInvalid. Read errors are wrapped.
func Read(r io.Reader) (*Key, error) {
	// prefix, key, one CR and the LF: the CR is trimmed and the LF replaced
	// by "\r\n" in place.
	need := len(prefix) + maxLen + 2
	page := os.Getpagesize()
	mem, backing, err := allocLocked((need + page - 1) / page * page)
	if err != nil {
		return nil, err
	}
	n, err := fill(r, mem)
	if err != nil {
		free(mem)
		return nil, err
	}
	if err := sealReadOnly(mem); err != nil {
		free(mem)
		return nil, err
	}
	return &Key{mem: mem, n: n, backing: backing}, nil
}

// fill writes the header line into mem and returns its length.
func fill(r io.Reader, mem []byte) (int, error) {
	copy(mem, prefix)
	// window holds the raw line: at most maxLen key bytes, a CR and the LF.
	// A window filled without a newline is too long whatever follows.
	window := mem[len(prefix) : len(prefix)+maxLen+2]
	filled, lineLen, empties := 0, -1, 0
	for lineLen < 0 && filled < len(window) {
		n, err := r.Read(window[filled:])
		for i, c := range window[filled : filled+n] {
			if c == '\n' {
				lineLen = filled + i
				break
			}
		}
		filled += n
		switch {
		case lineLen >= 0:
			// Whatever r says next is irrelevant: the line is complete.
		case err == io.EOF:
			lineLen = filled
		case err != nil:
			clear(window)
			return 0, fmt.Errorf("reading API key from stdin: %w", err)
		case n == 0:
			if empties++; empties >= maxEmptyReads {
				clear(window)
				return 0, fmt.Errorf("reading API key from stdin: %w", io.ErrNoProgress)
			}
		default:
			empties = 0
		}
	}
	if lineLen < 0 {
		clear(window)
		return 0, ErrTooLong
	}
	keyLen := lineLen
	if keyLen > 0 && window[keyLen-1] == '\r' {
		keyLen--
	}
	// Drop the CR, the LF and anything read past them.
	clear(window[keyLen:filled])
	if err := validate(window[:keyLen]); err != nil {
		clear(window)
		return 0, err
	}
	n := len(prefix) + copy(window[keyLen:], "\r\n") + keyLen
	return n, nil
}

// validate checks the key against ^[A-Za-z0-9_-]{1,maxLen}$.
func validate(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrEmpty
	case len(key) > maxLen:
		return ErrTooLong
	}
	for _, c := range key {
		ok := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-'
		if !ok {
			return ErrInvalid
		}
	}
	return nil
}

// HeaderLine returns "Authorization: Bearer <key>\r\n" as a read-only slice
// of the locked mapping, not a copy. Writing to it faults. Its capacity equals
// its length, so append copies instead of writing past it. It returns nil
// after Destroy.
func (k *Key) HeaderLine() []byte {
	return k.mem[:k.n:k.n]
}

// Backing names the mechanism holding the key, for one startup log line:
// "memfd_secret", "mlock" or "VirtualLock".
func (k *Key) Backing() string {
	return k.backing
}

// Destroy makes the memory writable, zeroes it, unlocks and unmaps it, on a
// best-effort basis. HeaderLine slices obtained earlier must not be used
// afterwards. Calling Destroy again does nothing.
func (k *Key) Destroy() {
	if k.mem == nil {
		return
	}
	free(k.mem)
	k.mem, k.n = nil, 0
}
