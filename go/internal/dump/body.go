package dump

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"sync"
)

// MaxBody is how many body bytes one dump file keeps; the rest is counted
// but not stored, so a huge upload cannot fill the disk in dump mode.
const MaxBody = 16 << 20

// chunkSize is how much of a body a Body holds in memory; past it, the
// bytes go on to a file of its own in the dump directory.
const chunkSize = 32 << 10

// memory bounds the chunks that all Bodies hold at once, 512 of them, 16 MiB
// (issue 15, finding 4); a Body that finds none free writes straight to its
// file. Without dumping, nothing is held.
var memory = make(chan struct{}, 512)

var chunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// Body stores up to MaxBody bytes written to it, in a chunk of memory and,
// past that, in an unnamed file (named until closed where the system cannot
// unlink an open file), and checks as they come whether they are one JSON
// text. A Body is used by one goroutine at a time; Close releases it.
type Body struct {
	d         *Dumper
	chunk     *[chunkSize]byte // nil before the first byte or when memory ran out
	n         int              // bytes in chunk
	file      *os.File
	filed     int64 // bytes in file
	stored    int64
	truncated bool
	failed    bool     // the file could not be written: the bytes are lost
	shape     indenter // counts, to tell JSON and what indenting it costs
}

// Body returns an empty Body whose file, if it needs one, goes in e's
// directory.
func (e *Exchange) Body() *Body { return &Body{d: e.d} }

// Write never fails, so Body can sit behind an io.TeeReader or beside the
// client in an io.MultiWriter.
func (b *Body) Write(p []byte) (int, error) {
	n := len(p)
	if room := MaxBody - b.stored; int64(len(p)) > room {
		p, b.truncated = p[:room], true
	}
	if len(p) == 0 || b.failed {
		return n, nil
	}
	if b.shape.s.st != stError { // an SSE stream fails at its first byte
		b.shape.Write(p)
	}
	b.stored += int64(len(p))
	if b.chunk == nil && b.file == nil { // the first byte: ask for a chunk
		select {
		case memory <- struct{}{}:
			b.chunk = chunks.Get().(*[chunkSize]byte)
		default:
		}
	}
	if b.chunk != nil && b.n+len(p) <= chunkSize {
		b.n += copy(b.chunk[b.n:], p)
		return n, nil
	}
	if b.flush() && b.chunk != nil && len(p) < chunkSize {
		b.n = copy(b.chunk[:], p)
		return n, nil
	}
	b.toFile(p)
	return n, nil
}

// flush moves the chunk's bytes to the file; it reports false if the bytes
// are lost.
func (b *Body) flush() bool {
	if b.n > 0 {
		b.toFile(b.chunk[:b.n])
		b.n = 0
	}
	return !b.failed
}

func (b *Body) toFile(p []byte) {
	if b.failed {
		return
	}
	var err error
	if b.file == nil {
		if b.file, err = os.CreateTemp(b.d.dir, ".body-*"); err == nil && unlinkOpen {
			err = os.Remove(b.file.Name())
		}
	}
	if err == nil {
		_, err = b.file.Write(p)
	}
	if err != nil {
		b.failed, b.truncated = true, true
		b.d.logf("dump: storing a body: %v", err)
		return
	}
	b.filed += int64(len(p))
}

// isJSON reports whether the stored bytes are one JSON text, which
// indenting would not grow by more than MaxBody: deeply nested JSON is
// written as a string, or a few KiB of brackets would take gigabytes.
func (b *Body) isJSON() bool {
	return !b.failed && b.shape.s.done() && b.shape.n-b.stored <= MaxBody
}

// each passes the stored bytes to w, in order, through the chunk's memory.
func (b *Body) each(w io.Writer) error {
	switch {
	case b.failed:
		return nil
	case b.file == nil:
		if b.chunk != nil {
			w.Write(b.chunk[:b.n])
		}
		return nil
	}
	var buf []byte
	if b.chunk != nil {
		if !b.flush() {
			return nil
		}
		buf = b.chunk[:]
	}
	if _, err := io.CopyBuffer(w, io.NewSectionReader(b.file, 0, b.filed), buf); err != nil {
		return fmt.Errorf("reading a stored body: %w", err)
	}
	return nil
}

// Close releases b's memory and file.
func (b *Body) Close() {
	if b.chunk != nil {
		chunks.Put(b.chunk)
		<-memory
		b.chunk = nil
	}
	if b.file != nil {
		b.file.Close()
		if !unlinkOpen {
			os.Remove(b.file.Name())
		}
		b.file = nil
	}
}

// writeIndented writes the body as a dump file's "body": re-indented at
// depth 1 if it is JSON, else a string.
func (b *Body) writeIndented(w *bufio.Writer) error {
	if b.isJSON() {
		return b.each(&indenter{w: w, depth: 1})
	}
	return b.writeString(w)
}

// Embed writes b, as a JSON value, into dst, a Body itself: binary bytes as
// a base64 string (as json.Marshal writes a []byte), the others as they are
// if they are JSON, else as a string. It closes b.
func (b *Body) Embed(dst io.Writer, binary bool) {
	defer b.Close()
	w := writers.Get().(*bufio.Writer)
	defer writers.Put(w)
	w.Reset(dst)
	var err error
	switch {
	case binary:
		w.WriteByte('"')
		enc := base64.NewEncoder(base64.StdEncoding, w)
		err = b.each(enc)
		enc.Close()
		w.WriteByte('"')
	case b.isJSON():
		err = b.each(w)
	default:
		err = b.writeString(w)
	}
	w.Flush() // dst, a Body, never fails
	if err != nil {
		b.d.logf("dump: %v", err)
	}
}

func (b *Body) writeString(w *bufio.Writer) error {
	w.WriteByte('"')
	s := &stringWriter{w: w}
	err := b.each(s)
	s.flush()
	w.WriteByte('"')
	return err
}

// Size is how many bytes b stores: those written to it, up to MaxBody.
func (b *Body) Size() int64 { return b.stored }

// writers buffer the writing of dump files and embedded values.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
