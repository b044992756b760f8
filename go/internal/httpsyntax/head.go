package httpsyntax

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// Field is one header field as received: its name keeps its case, its
// value has no leading or trailing whitespace.
type Field struct {
	Name, Value string
}

// Lookup returns the value of the first field named name, in any case, and
// how many fields have that name.
func Lookup(fields []Field, name string) (value string, n int) {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			if n == 0 {
				value = f.Value
			}
			n++
		}
	}
	return value, n
}

// HasToken reports whether a field named name, in any case, holds token in
// its comma-separated list, ignoring case.
func HasToken(fields []Field, name, token string) bool {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) && ListHasToken(f.Value, token) {
			return true
		}
	}
	return false
}

// ListHasToken reports whether a comma-separated list holds token, ignoring
// case.
func ListHasToken(list, token string) bool {
	for part := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

var (
	// ErrMalformed is a head that breaks RFC 9112's syntax.
	ErrMalformed = errors.New("malformed header section")
	// ErrTooLarge is a head longer than its limit.
	ErrTooLarge = errors.New("header section too large")
)

// maxEmptyLines bounds the empty lines skipped before a start line
// (RFC 9112, 2.2).
const maxEmptyLines = 4

// Head is a start line and the field lines that follow it, read by Read. All
// its strings share one allocation and stay valid after the next Read; only
// the scratch space is reused.
type Head struct {
	Start  string
	Fields []Field

	raw  []byte // the lines, without their line ends
	ends []int  // where each line ends in raw
}

// Read reads a head from br: a start line, unless start is false (a trailer
// section), then field lines up to an empty line, in at most limit bytes.
// Every line ends in CRLF, and no CR or LF appears anywhere else: a bare LF
// or a bare CR is ErrMalformed (issue 12: RFC 9112, 2.2 lets a recipient
// accept a bare LF, and each accepted variant is one more way for two
// parsers to read the same bytes differently). Up to four empty lines before
// a start line are skipped. The start line must be free of controls other
// than HTAB; a field line must be a token name, a colon with nothing before
// it, and a value free of controls other than HTAB. An obs-fold line (one
// that starts with a space or a tab) is ErrMalformed (RFC 9112, 5.2 lets a
// server answer 400 and a proxy answer 502). A syntax error is
// ErrMalformed, a head over limit is ErrTooLarge, an end of input within the
// head is io.ErrUnexpectedEOF, and other read errors come back as they are
// (io.EOF before the first byte). Read never returns a byte of the head in
// an error.
func (h *Head) Read(br *bufio.Reader, limit int, start bool) error {
	h.Start, h.Fields, h.raw, h.ends = "", nil, h.raw[:0], h.ends[:0]
	read, empty := 0, 0
	for {
		line, err := readLine(br, limit-read)
		read += len(line)
		if err != nil {
			if err == bufio.ErrBufferFull || read > limit {
				return ErrTooLarge
			}
			if err == io.EOF && read > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		n := len(line)
		if n < 2 || line[n-2] != '\r' {
			return ErrMalformed // a bare LF
		}
		line = line[:n-2]
		switch {
		case len(line) == 0 && start && len(h.ends) == 0:
			if empty++; empty > maxEmptyLines {
				return ErrMalformed
			}
			continue
		case len(line) == 0:
			return h.split(start)
		case line[0] == ' ' || line[0] == '\t':
			return ErrMalformed // obs-fold
		}
		h.raw = append(h.raw, line...)
		h.ends = append(h.ends, len(h.raw))
	}
}

// readLine returns the next line, its end included, reading pieces the size
// of br's buffer until the line ends or is longer than limit.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		if len(line) > limit {
			return line, bufio.ErrBufferFull
		}
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull && len(long) <= limit {
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	if len(long) > limit {
		return long, bufio.ErrBufferFull
	}
	return long, err
}

// split turns the lines into Start and Fields, with one string for all.
func (h *Head) split(start bool) error {
	s := string(h.raw)
	begin, i := 0, 0
	if start {
		h.Start = s[:h.ends[0]]
		if !ValidFieldValue(h.Start) {
			return ErrMalformed // a bare CR, say
		}
		begin, i = h.ends[0], 1
	}
	fields := make([]Field, 0, len(h.ends)-i)
	for ; i < len(h.ends); i++ {
		line := s[begin:h.ends[i]]
		begin = h.ends[i]
		name, value, ok := strings.Cut(line, ":")
		value = trimSpace(value)
		// A name with whitespace before the colon is not a token
		// (RFC 9112, 5.1: reject).
		if !ok || !IsToken(name) || !ValidFieldValue(value) {
			return ErrMalformed
		}
		fields = append(fields, Field{Name: name, Value: value})
	}
	h.Fields = fields
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func trimSpace[S string | []byte](s S) S {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
