// Package apikey reads a credential (the OpenAI API key, or in workload
// identity mode GitHub's OIDC request token and the OpenAI access tokens)
// straight into locked memory outside the Go heap and keeps it there, as a
// ready-made header line such as "Authorization: Bearer <key>\r\n",
// read-only until Destroy.
//
// The credential bytes never pass through a Go-heap buffer: Read hands a
// slice of the locked mapping to r.Read, so os.Stdin's read(2) lands in it
// directly. Read never includes credential bytes in a returned error.
package apikey

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxEmptyReads bounds how often a reader may return (0, nil) in a row, as
// bufio does, so that a misbehaving reader cannot spin Read forever.
const maxEmptyReads = 100

// The sentinel errors name the rule a credential broke; the errors Read
// returns wrap them, name the credential and never contain its bytes.
var (
	ErrEmpty   = errors.New("is empty")
	ErrTooLong = errors.New("is too long")
	ErrInvalid = errors.New("has a byte outside its alphabet")
)

// Format says what a credential line may hold and how its header line is
// written.
type Format struct {
	Name   string // names the credential in errors: "API key"
	Prefix string // starts the header line: "Authorization: Bearer "
	MaxLen int    // longest credential accepted, in bytes
	Extra  string // bytes allowed besides [A-Za-z0-9]; a '-' goes last
}

// KeyFormat is the OpenAI API key: 1 to 1024 bytes of [A-Za-z0-9_-].
var KeyFormat = Format{Name: "API key", Prefix: "Authorization: Bearer ", MaxLen: 1024, Extra: "_-"}

// RequestTokenFormat is GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_TOKEN
// (issue 10): 1 to 16 KiB of [A-Za-z0-9._-], sent with GitHub's lowercase
// "bearer" scheme.
var RequestTokenFormat = Format{Name: "OIDC request token", Prefix: "Authorization: bearer ", MaxLen: 16 << 10, Extra: "._-"}

// AccessTokenFormat is an OpenAI access token from the token exchange: 1 to
// 16 KiB of RFC 6750's b64token alphabet.
var AccessTokenFormat = Format{Name: "access token", Prefix: "Authorization: Bearer ", MaxLen: 16 << 10, Extra: "._~+/=-"}

// formatError is a broken rule, worded for the credential's Format.
type formatError struct {
	msg  string
	rule error
}

func (e *formatError) Error() string { return e.msg }
func (e *formatError) Unwrap() error { return e.rule }

func (f Format) fail(rule error) error {
	msg := f.Name + " is empty"
	switch rule {
	case ErrTooLong:
		msg = fmt.Sprintf("%s is longer than %d bytes", f.Name, f.MaxLen)
	case ErrInvalid:
		msg = f.Name + " must match ^[A-Za-z0-9" + f.Extra + "]+$"
	}
	return &formatError{msg: msg, rule: rule}
}

// Key holds a header line such as "Authorization: Bearer <key>\r\n" in
// locked, read-only memory outside the Go heap. The zero Key holds nothing.
type Key struct {
	mem     []byte // the whole locked mapping
	n       int    // length of the header line at the start of mem
	backing string
}

// Read reads the API key: ReadFormat with KeyFormat.
func Read(r io.Reader) (*Key, error) {
	return ReadFormat(r, KeyFormat)
}

// ReadFormat reads one line from r straight into locked memory and returns
// it as a Key holding f.Prefix, the line and CRLF. It calls r.Read with
// slices of that memory until it sees a newline or EOF and never calls r.Read
// again once a newline has arrived; bytes after the newline are zeroed. One
// trailing CR is removed. The line must be 1 to f.MaxLen bytes of
// [A-Za-z0-9] and f.Extra; otherwise ReadFormat zeroes and frees the memory
// and returns an error wrapping ErrEmpty, ErrTooLong or ErrInvalid. Read
// errors are wrapped.
func ReadFormat(r io.Reader, f Format) (*Key, error) {
	// prefix, credential, one CR and the LF: the CR is trimmed and the LF
	// replaced by "\r\n" in place.
	need := len(f.Prefix) + f.MaxLen + 2
	page := os.Getpagesize()
	mem, backing, err := allocLocked((need + page - 1) / page * page)
	if err != nil {
		return nil, err
	}
	n, err := fill(r, mem, f)
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
func fill(r io.Reader, mem []byte, f Format) (int, error) {
	copy(mem, f.Prefix)
	// window holds the raw line: at most MaxLen credential bytes, a CR and
	// the LF. A window filled without a newline is too long whatever
	// follows.
	window := mem[len(f.Prefix) : len(f.Prefix)+f.MaxLen+2]
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
			return 0, fmt.Errorf("reading %s from stdin: %w", f.Name, err)
		case n == 0:
			if empties++; empties >= maxEmptyReads {
				clear(window)
				return 0, fmt.Errorf("reading %s from stdin: %w", f.Name, io.ErrNoProgress)
			}
		default:
			empties = 0
		}
	}
	if lineLen < 0 {
		clear(window)
		return 0, f.fail(ErrTooLong)
	}
	keyLen := lineLen
	if keyLen > 0 && window[keyLen-1] == '\r' {
		keyLen--
	}
	// Drop the CR, the LF and anything read past them.
	clear(window[keyLen:filled])
	if err := f.validate(window[:keyLen]); err != nil {
		clear(window)
		return 0, err
	}
	n := len(f.Prefix) + copy(window[keyLen:], "\r\n") + keyLen
	return n, nil
}

// validate checks the credential against ^[A-Za-z0-9<Extra>]{1,MaxLen}$.
func (f Format) validate(key []byte) error {
	switch {
	case len(key) == 0:
		return f.fail(ErrEmpty)
	case len(key) > f.MaxLen:
		return f.fail(ErrTooLong)
	}
	for _, c := range key {
		ok := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte(f.Extra, c) >= 0
		if !ok {
			return f.fail(ErrInvalid)
		}
	}
	return nil
}

// HeaderLine returns the header line, e.g. "Authorization: Bearer <key>\r\n",
// as a read-only slice of the locked mapping, not a copy. Writing to it
// faults. Its capacity equals its length, so append copies instead of
// writing past it. It returns nil after Destroy.
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
