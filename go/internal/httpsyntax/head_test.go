package httpsyntax

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// bufSize is the server's and the upstream client's bufio.Reader size.
const bufSize = 4096

type headTest struct {
	name   string
	in     string
	limit  int
	start  bool
	want   string  // Start
	fields []Field // nil: none
	err    error
}

func field(name, value string) Field { return Field{Name: name, Value: value} }

var headTests = []headTest{
	{name: "CRLF", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A:  b \r\n\r\n", limit: 1 << 10, start: true,
		want: "GET / HTTP/1.1", fields: []Field{field("Host", "x"), field("X-A", "b")}},
	// Line ends: CRLF only (issue 12).
	{name: "bare LF", in: "GET / HTTP/1.1\nHost: x\nX-A: b\n\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare LF after the start line", in: "GET / HTTP/1.1\nHost: x\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare LF in a field", in: "S\r\nX-A: a\nX-B: b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare LF ends the head", in: "S\r\nX-A: b\r\n\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare LF before the start line", in: "\nS\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare CR in the start line", in: "GET /\r HTTP/1.1\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare CR ends the start line", in: "S\rX-A: b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare CR before the last CRLF", in: "S\r\nX-A: b\r\n\r\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "LF CR", in: "S\n\rX-A: b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "no fields", in: "GET / HTTP/1.0\r\n\r\n", limit: 1 << 10, start: true, want: "GET / HTTP/1.0"},
	{name: "case, order and repeats kept", in: "S\r\nx-b: 1\r\nX-A: 2\r\nX-B: 3\r\n\r\n", limit: 1 << 10, start: true,
		want: "S", fields: []Field{field("x-b", "1"), field("X-A", "2"), field("X-B", "3")}},
	{name: "empty value", in: "S\r\nX-A:\r\nX-B: \t \r\n\r\n", limit: 1 << 10, start: true,
		want: "S", fields: []Field{field("X-A", ""), field("X-B", "")}},
	{name: "colon and tab in a value", in: "S\r\nX-A: b:c\td\r\n\r\n", limit: 1 << 10, start: true,
		want: "S", fields: []Field{field("X-A", "b:c\td")}},
	{name: "obs-text in a value", in: "S\r\nX-A: caf\xe9\r\n\r\n", limit: 1 << 10, start: true,
		want: "S", fields: []Field{field("X-A", "caf\xe9")}},

	// obs-fold: refused (RFC 9112, 5.2; issue 12).
	{name: "obs-fold", in: "S\r\nX-A: a \r\n \t b\r\n\tc\r\nX-B: d\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "obs-fold with a tab", in: "S\r\nX-A: a\r\n\tb\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "obs-fold of whitespace only", in: "S\r\nX-A: a\r\n \r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "obs-fold in a trailer", in: "X-A: a\r\n b\r\n\r\n", limit: 1 << 10, start: false, err: ErrMalformed},
	{name: "obs-fold of the start line", in: "S\r\n X-A: a\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "obs-fold first", in: " S\r\nX-A: a\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "obs-fold first in a trailer", in: " X-A: a\r\n\r\n", limit: 1 << 10, start: false, err: ErrMalformed},

	// Empty lines before the start line: RFC 9112, 2.2.
	{name: "four empty lines skipped", in: "\r\n\r\n\r\n\r\nS\r\nX-A: b\r\n\r\n", limit: 1 << 10, start: true,
		want: "S", fields: []Field{field("X-A", "b")}},
	{name: "five empty lines", in: "\r\n\r\n\r\n\r\n\r\nS\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "empty lines count toward the limit", in: "\r\n\r\n\r\n\r\nS\r\n\r\n", limit: 10, start: true, err: ErrTooLarge},

	// The limit counts every byte, line ends included.
	{name: "exactly the limit", in: "S\r\nX-A: b\r\n\r\n", limit: 13, start: true,
		want: "S", fields: []Field{field("X-A", "b")}},
	{name: "one byte over the limit", in: "S\r\nX-A: b\r\n\r\n", limit: 12, start: true, err: ErrTooLarge},
	{name: "many short lines", in: "S\r\n" + strings.Repeat("X-A: b\r\n", 200) + "\r\n", limit: 1 << 10, start: true, err: ErrTooLarge},
	{name: "line longer than the buffer, within the limit", in: "S\r\nX-A: " + strings.Repeat("a", 2*bufSize) + "\r\n\r\n",
		limit: 3 * bufSize, start: true, want: "S", fields: []Field{field("X-A", strings.Repeat("a", 2*bufSize))}},
	{name: "line longer than the buffer and the limit", in: "S\r\nX-A: " + strings.Repeat("a", 2*bufSize) + "\r\n\r\n",
		limit: bufSize + 100, start: true, err: ErrTooLarge},
	{name: "line longer than the buffer, limit below it", in: "S\r\nX-A: " + strings.Repeat("a", 2*bufSize) + "\r\n\r\n",
		limit: 1 << 10, start: true, err: ErrTooLarge},
	{name: "start line longer than the buffer and the limit", in: "GET /" + strings.Repeat("a", 3*bufSize) + " HTTP/1.1\r\n\r\n",
		limit: 2 * bufSize, start: true, err: ErrTooLarge},
	{name: "line longer than the limit without an end", in: "S\r\nX-A: " + strings.Repeat("a", 2*bufSize),
		limit: bufSize, start: true, err: ErrTooLarge},

	// Field syntax: RFC 9112, 5.1 and RFC 9110, 5.5.
	{name: "space before colon", in: "S\r\nX-A : b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "tab before colon", in: "S\r\nX-A\t: b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "space before colon in a trailer", in: "X-A : b\r\n\r\n", limit: 1 << 10, start: false, err: ErrMalformed},
	{name: "no colon", in: "S\r\nX-A b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "empty name", in: "S\r\n: b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "name not a token", in: "S\r\nX(A): b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "NUL in a value", in: "S\r\nX-A: a\x00b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "bare CR in a value", in: "S\r\nX-A: a\rX-B: b\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "CR before CRLF", in: "S\r\nX-A: a\r\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "DEL in a value", in: "S\r\nX-A: a\x7f\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},
	{name: "control byte in the start line", in: "S\x01\r\n\r\n", limit: 1 << 10, start: true, err: ErrMalformed},

	// Trailer sections: no start line.
	{name: "trailer", in: "X-T: 1\r\nx-u: 2\r\n\r\n", limit: 1 << 10, start: false,
		fields: []Field{field("X-T", "1"), field("x-u", "2")}},
	{name: "empty trailer", in: "\r\n", limit: 1 << 10, start: false},
	{name: "empty trailer, bare LF", in: "\n", limit: 1 << 10, start: false, err: ErrMalformed},
	{name: "trailer field, bare LF", in: "X-T: 1\n\r\n", limit: 1 << 10, start: false, err: ErrMalformed},
	{name: "start line in a trailer", in: "GET / HTTP/1.1\r\n\r\n", limit: 1 << 10, start: false, err: ErrMalformed},
	{name: "trailer over the limit", in: "X-T: " + strings.Repeat("a", 100) + "\r\n\r\n", limit: 50, start: false, err: ErrTooLarge},

	// Read errors come back as they are.
	{name: "nothing", in: "", limit: 1 << 10, start: true, err: io.EOF},
	{name: "end within the start line", in: "GET / HT", limit: 1 << 10, start: true, err: io.ErrUnexpectedEOF},
	{name: "end before the empty line", in: "S\r\nX-A: b\r\n", limit: 1 << 10, start: true, err: io.ErrUnexpectedEOF},
	{name: "end of a trailer before the empty line", in: "X-T: 1\r\n", limit: 1 << 10, start: false, err: io.ErrUnexpectedEOF},
}

func TestHeadRead(t *testing.T) {
	for _, tt := range headTests {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			br := bufio.NewReaderSize(strings.NewReader(tt.in), bufSize)
			err := h.Read(br, tt.limit, tt.start)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if h.Start != tt.want {
				t.Errorf("got Start %q, want %q", h.Start, tt.want)
			}
			if !slices.Equal(h.Fields, tt.fields) {
				t.Errorf("got Fields %q, want %q", h.Fields, tt.fields)
			}
		})
	}
}

// TestHeadReadLeavesTheRest checks that Read consumes its head and nothing
// after it.
func TestHeadReadLeavesTheRest(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("S\r\nX-A: b\r\n\r\nbody"), bufSize)
	var h Head
	if err := h.Read(br, 1<<10, true); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "body" {
		t.Errorf("got rest %q, want %q", rest, "body")
	}
}

// TestHeadReadAgain checks that what one Read returned is intact after
// later Reads on the same Head: a request's fields after its trailer
// section is read, and after the next request's head.
func TestHeadReadAgain(t *testing.T) {
	const in = "POST /one HTTP/1.1\r\nHost: x\r\nX-A: a b\r\n\r\n" +
		"X-T: t\r\n\r\n" +
		"GET /two HTTP/1.1\r\nHost: yy\r\nX-Z: zzzzzzzz\r\nX-Y: y\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
	var h Head
	if err := h.Read(br, 1<<10, true); err != nil {
		t.Fatal(err)
	}
	start, fields := h.Start, h.Fields
	want := []Field{field("Host", "x"), field("X-A", "a b")}

	if err := h.Read(br, 1<<10, false); err != nil {
		t.Fatalf("trailer: %v", err)
	}
	if got := []Field{field("X-T", "t")}; !slices.Equal(h.Fields, got) {
		t.Errorf("trailer: got %q, want %q", h.Fields, got)
	}
	if start != "POST /one HTTP/1.1" || !slices.Equal(fields, want) {
		t.Errorf("after the trailer: got %q %q, want %q %q", start, fields, "POST /one HTTP/1.1", want)
	}

	if err := h.Read(br, 1<<10, true); err != nil {
		t.Fatalf("second head: %v", err)
	}
	if got := []Field{field("Host", "yy"), field("X-Z", "zzzzzzzz"), field("X-Y", "y")}; h.Start != "GET /two HTTP/1.1" || !slices.Equal(h.Fields, got) {
		t.Errorf("second head: got %q %q, want %q %q", h.Start, h.Fields, "GET /two HTTP/1.1", got)
	}
	if start != "POST /one HTTP/1.1" || !slices.Equal(fields, want) {
		t.Errorf("after the second head: got %q %q, want %q %q", start, fields, "POST /one HTTP/1.1", want)
	}
	// The server filters a request's Fields in place: that must not reach
	// the next head's.
	fields[0] = field("Clobbered", "1")
	if h.Fields[0].Name != "Host" {
		t.Errorf("second head shares its Fields with the first: got %q", h.Fields)
	}
}

// FuzzHeadRead checks that Read never panics, never reads more than limit
// bytes for a head it returns, and returns only token names and valid
// values, trimmed; and that a second Read leaves the first's result intact.
func FuzzHeadRead(f *testing.F) {
	for _, tt := range headTests {
		f.Add([]byte(tt.in), uint16(tt.limit), tt.start)
	}
	f.Fuzz(func(t *testing.T, in []byte, limit uint16, start bool) {
		src := bytes.NewReader(in)
		br := bufio.NewReaderSize(src, bufSize)
		var h Head
		err := h.Read(br, int(limit), start)
		if err != nil {
			if err != ErrMalformed && err != ErrTooLarge && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("got error %v, want ErrMalformed, ErrTooLarge, EOF or ErrUnexpectedEOF", err)
			}
			return
		}
		if consumed := len(in) - src.Len() - br.Buffered(); consumed > int(limit) {
			t.Errorf("read %d bytes, limit %d", consumed, limit)
		}
		if start && (h.Start == "" || isSpace(h.Start[0]) || strings.ContainsAny(h.Start, "\n")) {
			t.Errorf("got Start %q", h.Start)
		}
		checkFields(t, h.Fields)

		fields, want := h.Fields, slices.Clone(h.Fields)
		if err := h.Read(br, int(limit), start); err == nil {
			checkFields(t, h.Fields)
		}
		if !slices.Equal(fields, want) {
			t.Errorf("second Read changed the first's Fields: got %q, want %q", fields, want)
		}
	})
}

func checkFields(t *testing.T, fields []Field) {
	t.Helper()
	for _, fl := range fields {
		if !IsToken(fl.Name) || !ValidFieldValue(fl.Value) || fl.Value != strings.Trim(fl.Value, " \t") {
			t.Errorf("got field %q: %q", fl.Name, fl.Value)
		}
	}
}
