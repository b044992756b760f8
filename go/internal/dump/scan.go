package dump

// An incremental JSON scanner, so that a body can be checked and re-indented
// as it streams by, in a few bytes of state, instead of held whole for
// json.Valid and json.MarshalIndent (issue 15, finding 4). It accepts what
// json.Valid accepts (RFC 8259, invalid UTF-8 in strings included, nesting
// at most 10,000 deep) and classifies each byte the way json.Indent needs.

// class is what one byte is to the indenter.
type class uint8

const (
	classSpace class = iota // whitespace between tokens: dropped
	classCopy               // inside a string or a literal: copied
	classOpen               // { or [
	classClose              // } or ]
	classComma
	classColon
	classError
)

// maxDepth is json.Valid's limit on nesting.
const maxDepth = 10000

// state is where the scanner is in the grammar.
type state uint8

const (
	stValue        state = iota // a value must follow
	stValueOrClose              // after [
	stKeyOrClose                // after {
	stKey                       // after , in an object
	stAfter                     // after a value, or a key awaiting its colon
	stString
	stEscape
	stHex // \u: hex counts the digits still to come
	stMinus
	stZero
	stInt
	stDot
	stFrac
	stExp
	stExpSign
	stExpDigits
	stLiteral // true, false, null: lit is what remains
	stError
)

// scanner follows one JSON text; its zero value expects a value.
type scanner struct {
	st    state
	hex   uint8
	lit   string
	key   bool   // the string being scanned is an object key
	stack []byte // '{' or '[' for each open container
}

// done reports whether the bytes so far are one complete JSON text.
func (s *scanner) done() bool {
	switch s.st {
	case stZero, stInt, stFrac, stExpDigits:
		return len(s.stack) == 0 // a number ends with the text
	case stAfter:
		return len(s.stack) == 0 && !s.key
	}
	return false
}

// step takes the next byte.
func (s *scanner) step(c byte) class {
	switch s.st {
	case stString:
		switch {
		case c == '"':
			s.st = stAfter
		case c == '\\':
			s.st = stEscape
		case c < 0x20:
			return s.fail()
		}
		return classCopy
	case stEscape:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.st = stString
		case 'u':
			s.st, s.hex = stHex, 4
		default:
			return s.fail()
		}
		return classCopy
	case stHex:
		if !isHex(c) {
			return s.fail()
		}
		if s.hex--; s.hex == 0 {
			s.st = stString
		}
		return classCopy
	case stLiteral:
		if c != s.lit[0] {
			return s.fail()
		}
		if s.lit = s.lit[1:]; s.lit == "" {
			s.st = stAfter
		}
		return classCopy
	case stMinus:
		switch {
		case c == '0':
			s.st = stZero
		case '1' <= c && c <= '9':
			s.st = stInt
		default:
			return s.fail()
		}
		return classCopy
	case stZero, stInt:
		switch {
		case s.st == stInt && isDigit(c):
		case c == '.':
			s.st = stDot
		case c == 'e' || c == 'E':
			s.st = stExp
		default:
			s.st = stAfter
			return s.step(c)
		}
		return classCopy
	case stDot, stFrac:
		switch {
		case isDigit(c):
			s.st = stFrac
		case s.st == stFrac && (c == 'e' || c == 'E'):
			s.st = stExp
		case s.st == stFrac:
			s.st = stAfter
			return s.step(c)
		default:
			return s.fail()
		}
		return classCopy
	case stExp, stExpSign:
		switch {
		case isDigit(c):
			s.st = stExpDigits
		case s.st == stExp && (c == '+' || c == '-'):
			s.st = stExpSign
		default:
			return s.fail()
		}
		return classCopy
	case stExpDigits:
		if isDigit(c) {
			return classCopy
		}
		s.st = stAfter
		return s.step(c)
	case stError:
		return classError
	}
	if isSpace(c) {
		return classSpace
	}
	switch s.st {
	case stKeyOrClose, stKey:
		switch {
		case c == '"':
			s.st, s.key = stString, true
			return classCopy
		case c == '}' && s.st == stKeyOrClose:
			return s.close()
		}
		return s.fail()
	case stValueOrClose:
		if c == ']' {
			return s.close()
		}
		return s.value(c)
	case stValue:
		return s.value(c)
	}
	// stAfter
	if len(s.stack) == 0 {
		return s.fail() // only whitespace may follow the text
	}
	top := s.stack[len(s.stack)-1]
	switch {
	case s.key && c == ':':
		s.st, s.key = stValue, false
		return classColon
	case s.key:
		return s.fail()
	case c == ',':
		s.st = stValue
		if top == '{' {
			s.st = stKey
		}
		return classComma
	case c == '}' && top == '{', c == ']' && top == '[':
		return s.close()
	}
	return s.fail()
}

// value starts a value at c.
func (s *scanner) value(c byte) class {
	switch {
	case c == '{' || c == '[':
		if len(s.stack) == maxDepth {
			return s.fail()
		}
		s.stack = append(s.stack, c)
		s.st = stValueOrClose
		if c == '{' {
			s.st = stKeyOrClose
		}
		return classOpen
	case c == '"':
		s.st = stString
	case c == '-':
		s.st = stMinus
	case c == '0':
		s.st = stZero
	case '1' <= c && c <= '9':
		s.st = stInt
	case c == 't':
		s.st, s.lit = stLiteral, "rue"
	case c == 'f':
		s.st, s.lit = stLiteral, "alse"
	case c == 'n':
		s.st, s.lit = stLiteral, "ull"
	default:
		return s.fail()
	}
	return classCopy
}

func (s *scanner) close() class {
	s.stack = s.stack[:len(s.stack)-1]
	s.st = stAfter
	return classClose
}

func (s *scanner) fail() class {
	s.st = stError
	s.stack = nil
	return classError
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
