package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"strconv"
	"sync"
	"sync/atomic"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// head is a pooled buffer for the request head minus the Auth line: the
// request line, Host and caller headers, then (after split) the framing
// header and the blank line. The Auth line never enters it.
type head struct {
	buf []byte
}

// maxPooledHead keeps one oversized request from pinning memory in the pool.
const maxPooledHead = 64 << 10

var headPool = sync.Pool{New: func() any { return &head{buf: make([]byte, 0, 4096)} }}

// testOnlyReleased, when set, sees every pooled buffer (full capacity) as it
// goes back to its pool, so tests can prove the key never entered one.
var testOnlyReleased atomic.Pointer[func([]byte)]

func released(b []byte) {
	if f := testOnlyReleased.Load(); f != nil {
		(*f)(b)
	}
}

func getHead() *head { return headPool.Get().(*head) }

func putHead(h *head) {
	released(h.buf[:cap(h.buf)])
	if cap(h.buf) > maxPooledHead {
		return
	}
	h.buf = h.buf[:0]
	headPool.Put(h)
}

// build renders the head into h.buf, the fields in the caller's order; the
// Auth line goes at split, between the caller's fields and the framing
// field.
func (h *head) build(c *Client, fields []httpsyntax.Field, contentLength int64) (split int, err error) {
	b, err := appendHead(h.buf[:0], c.method, c, fields)
	if err != nil {
		return 0, err
	}
	split = len(b)
	switch {
	case contentLength == 0 && c.method == "GET":
		// RFC 9110, 8.6: no Content-Length for a GET without content.
		b = append(b, "\r\n"...)
	case contentLength >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, contentLength, 10)
		b = append(b, "\r\n\r\n"...)
	default:
		b = append(b, teChunked...)
	}
	h.buf = b
	return split, nil
}

// appendHead appends the request line, Host and the caller's fields, in
// their order, to b.
func appendHead(b []byte, method string, c *Client, fields []httpsyntax.Field) ([]byte, error) {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, c.target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.host...)
	b = append(b, "\r\n"...)
	for _, f := range fields {
		if err := checkHeaderName(f.Name); err != nil {
			return nil, err
		}
		if !httpsyntax.ValidFieldValue(f.Value) {
			return nil, fmt.Errorf("request header %q: value contains a control character", trim(f.Name))
		}
		b = append(b, f.Name...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	return b, nil
}

// readBody appends the whole body, n bytes, to the head: both leave in one
// write. Sized to the body rather than a fixed buffer, so many small
// requests at once cost little memory (issue 5).
func (h *head) readBody(body io.Reader, n int) error {
	start := len(h.buf)
	h.buf = slices.Grow(h.buf, n)[:start+n]
	return readInline(body, h.buf[start:])
}

// readAhead reads a body of unknown length, which build framed as chunked,
// up to one byte past the inline window, growing the head as the body comes
// (issue 5). A body that ends within the window is read to its end, so
// every framing error of the client's (a bad chunk, a malformed trailer
// section, a body over the caller's limit) comes back before the upstream
// is contacted (issue 12); it is then re-framed with its Content-Length and
// leaves with the head, and rest is nil. A longer body is streamed chunked:
// rest yields what was read ahead, then the remainder. tail is what
// follows the Auth line: the framing field, the empty line, and an inline
// body.
func (h *head) readAhead(body io.Reader) (tail []byte, rest io.Reader, err error) {
	start := len(h.buf) // after "Transfer-Encoding: chunked\r\n\r\n"
	const window = bodyBufSize + 1
	for len(h.buf)-start < window {
		if len(h.buf) == cap(h.buf) {
			h.buf = slices.Grow(h.buf, min(window-(len(h.buf)-start), max(len(h.buf)-start, 4<<10)))
		}
		n, err := body.Read(h.buf[len(h.buf):min(cap(h.buf), start+window)])
		h.buf = h.buf[:len(h.buf)+n]
		if err == io.EOF {
			// "Content-Length: 32768\r\n\r\n" is shorter than the chunked
			// framing it replaces, so it fits in front of the body.
			var framing [len(teChunked)]byte
			f := strconv.AppendInt(append(framing[:0], "Content-Length: "...), int64(len(h.buf)-start), 10)
			f = append(f, "\r\n\r\n"...)
			return h.buf[start-copy(h.buf[start-len(f):start], f):], nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
	ahead := bytes.Clone(h.buf[start:]) // h goes back to its pool when Do returns
	h.buf = h.buf[:start]
	return h.buf[start-len(teChunked):], io.MultiReader(bytes.NewReader(ahead), body), nil
}

// teChunked is the framing of a body of unknown length.
const teChunked = "Transfer-Encoding: chunked\r\n\r\n"

func checkHeaderName(k string) error {
	if k == "" {
		return errors.New("request header with an empty name")
	}
	if !httpsyntax.IsToken(k) {
		return fmt.Errorf("request header name %q is not a token", trim(k))
	}
	// Written by Do itself: from the caller they would duplicate the key or
	// desynchronise the framing (request smuggling).
	if httpsyntax.ClassOf(k)&(httpsyntax.Framing|httpsyntax.Endpoint) != 0 {
		return fmt.Errorf("request header %q is set by the upstream client, not the caller", trim(k))
	}
	return nil
}

// bodyBufSize is the fixed copy buffer of a streamed body and the largest
// body sent inline with the head; a larger body is never buffered whole.
const bodyBufSize = 32 << 10

// chunkPre leaves room before the data for the chunk size line (at most
// "8000\r\n"), chunkPost after it for "\r\n" and the last-chunk "0\r\n\r\n".
const (
	chunkPre  = 8
	chunkPost = 7
)

var bodyPool = sync.Pool{New: func() any { return new([bodyBufSize]byte) }}

func putBody(b *[bodyBufSize]byte) {
	released(b[:])
	bodyPool.Put(b)
}

// errShortBody is wrapped when the body ends before the declared length.
var errShortBody = fmt.Errorf("request body shorter than its Content-Length: %w", io.ErrUnexpectedEOF)

// readInline fills p with the whole body and makes sure it ends there, so
// the caller's reader sees its EOF as it would when streamed.
func readInline(body io.Reader, p []byte) error {
	if _, err := io.ReadFull(body, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return errShortBody
		}
		return err
	}
	var extra [1]byte
	switch n, err := body.Read(extra[:]); {
	case n > 0:
		return errors.New("request body longer than its Content-Length")
	case err != nil && err != io.EOF:
		return err
	}
	return nil
}

// writeBody copies body to the connection, framed by contentLength. It
// runs on its own goroutine and reports through x.
func (x *exchange) writeBody(body io.Reader, contentLength int64) {
	defer x.writerExit()
	buf := bodyPool.Get().(*[bodyBufSize]byte)
	defer putBody(buf)
	if contentLength >= 0 {
		x.copyLength(body, contentLength, buf[:])
	} else {
		x.copyChunked(body, buf[:])
	}
}

func (x *exchange) copyLength(body io.Reader, remaining int64, buf []byte) {
	for remaining > 0 {
		p := buf
		if int64(len(p)) > remaining {
			p = p[:remaining]
		}
		n, err := x.readBody(body, p)
		if n > 0 {
			remaining -= int64(n)
			if _, werr := x.pc.nc.Write(p[:n]); werr != nil {
				x.writeFailed(werr)
				return
			}
		}
		switch {
		case remaining == 0:
		case errors.Is(err, errAborted):
			return
		case err == io.EOF:
			x.bodyFailed(errShortBody)
			return
		case err != nil:
			x.bodyFailed(err)
			return
		}
	}
	x.bodyDone()
}

func (x *exchange) copyChunked(body io.Reader, buf []byte) {
	data := buf[chunkPre : len(buf)-chunkPost]
	for {
		n, err := x.readBody(body, data)
		if errors.Is(err, errAborted) {
			return
		}
		if err != nil && err != io.EOF {
			x.bodyFailed(err)
			return
		}
		start, end := chunkPre, chunkPre
		if n > 0 {
			var size [chunkPre]byte
			line := append(strconv.AppendUint(size[:0], uint64(n), 16), "\r\n"...)
			start -= copy(buf[start-len(line):start], line)
			end += n
			end += copy(buf[end:], "\r\n")
		}
		if err == io.EOF {
			end += copy(buf[end:], "0\r\n\r\n")
		}
		if end > start {
			if _, werr := x.pc.nc.Write(buf[start:end]); werr != nil {
				x.writeFailed(werr)
				return
			}
		}
		if err == io.EOF {
			x.bodyDone()
			return
		}
	}
}
