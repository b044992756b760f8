package dump

import (
	"bufio"
	"encoding/json"
	"unicode/utf8"
)

// indenter writes a valid JSON text as json.MarshalIndent writes a
// json.RawMessage at depth: compacted, with <, >, &, U+2028 and U+2029
// escaped in strings, then indented by two spaces; a dump file is the same
// whether its body was written in one piece or in many. With no w, it only
// counts what it would write.
type indenter struct {
	w          *bufio.Writer
	n          int64 // bytes written
	s          scanner
	depth      int
	needIndent bool
	held       []byte // the start of a possible U+2028 or U+2029
}

func (d *indenter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i++ {
		if d.s.st == stString && len(d.held) == 0 {
			// Most of a body is the inside of strings: copied in runs.
			j := i
			for j < len(p) && plain(p[j]) {
				j++
			}
			if j > i {
				d.n += int64(j - i)
				if d.w != nil {
					d.w.Write(p[i:j])
				}
				if i = j; i == len(p) {
					break
				}
			}
		}
		c := p[i]
		cl := d.s.step(c)
		if cl == classSpace || cl == classError {
			continue
		}
		if d.needIndent && cl != classClose {
			d.needIndent = false
			d.depth++
			d.newline()
		}
		switch cl {
		case classCopy:
			d.copy(c)
		case classOpen:
			d.needIndent = true
			d.put(c)
		case classComma:
			d.put(c)
			d.newline()
		case classColon:
			d.puts(": ")
		case classClose:
			if d.needIndent {
				d.needIndent = false
			} else {
				d.depth--
				d.newline()
			}
			d.put(c)
		}
	}
	return len(p), nil
}

// copy writes one byte of a string or literal, escaped as json.Marshal's
// compaction escapes it for HTML.
func (d *indenter) copy(c byte) {
	const lineSep = "\u2028" // U+2029 differs in its last bit only
	switch {
	case len(d.held) == 2 && c&^1 == lineSep[2]:
		d.held = d.held[:0]
		d.puts(`\u202`)
		d.put(hexDigits[c&0xf])
		return
	case len(d.held) < 2 && c == lineSep[len(d.held)]:
		d.held = append(d.held, c)
		return
	}
	for _, h := range d.held {
		d.put(h)
	}
	d.held = d.held[:0]
	switch {
	case c == lineSep[0]:
		d.held = append(d.held, c)
	case c == '<' || c == '>' || c == '&':
		d.puts(`\u00`)
		d.put(hexDigits[c>>4])
		d.put(hexDigits[c&0xf])
	default:
		d.put(c)
	}
}

func (d *indenter) newline() {
	d.put('\n')
	for range d.depth {
		d.puts("  ")
	}
}

func (d *indenter) put(c byte) {
	d.n++
	if d.w != nil {
		d.w.WriteByte(c)
	}
}

func (d *indenter) puts(s string) {
	d.n += int64(len(s))
	if d.w != nil {
		d.w.WriteString(s)
	}
}

const hexDigits = "0123456789abcdef"

// plain reports whether c, inside a string, is copied as it is and leaves
// the scanner where it was.
func plain(c byte) bool {
	return c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0xe2
}

// stringWriter writes bytes as the inside of a JSON string, as json.Marshal
// writes a Go string: invalid UTF-8 as U+FFFD, HTML characters escaped. A
// rune split across writes is held until it is whole.
type stringWriter struct {
	w    *bufio.Writer
	held []byte
}

func (s *stringWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(s.held) > 0 {
		p = append(s.held, p...)
		s.held = s.held[:0]
	}
	// Hold back an incomplete rune at the end: at most 3 bytes.
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				s.held = append(s.held, p[i:]...)
				p = p[:i]
			}
			break
		}
	}
	s.encode(p)
	return n, nil
}

// flush writes what is held: the end of the string has come.
func (s *stringWriter) flush() {
	s.encode(s.held)
	s.held = s.held[:0]
}

func (s *stringWriter) encode(p []byte) {
	if len(p) == 0 {
		return
	}
	q, _ := json.Marshal(string(p)) // a string always encodes
	s.w.Write(q[1 : len(q)-1])
}
