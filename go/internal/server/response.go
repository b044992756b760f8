package server

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// writeBufSize holds a response head and one 16 KiB read of a stream with
// its chunk framing, so that each becomes one write to the socket.
const writeBufSize = 20 << 10

// writerPool holds the write buffers of responses with bytes waiting to be
// flushed; a stream waiting for its next event holds none.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}

const continueLine = "HTTP/1.1 100 Continue\r\n\r\n"

// Handler answers requests. Serve may read r.Body while it writes w, and
// aborts a response without ending it cleanly by panicking with
// http.ErrAbortHandler.
type Handler interface {
	Serve(w *Response, r *Request)
}

// HandlerFunc is a func as a Handler.
type HandlerFunc func(w *Response, r *Request)

// Serve calls f.
func (f HandlerFunc) Serve(w *Response, r *Request) { f(w, r) }

// Response writes the answer to one request. Its methods are called from
// the handler's goroutine, except sendContinue (see body).
type Response struct {
	c   *conn
	req *request
	bw  *bufio.Writer // from writerPool while unflushed bytes wait

	status     int   // 0 until WriteHeader
	declared   int64 // Content-Length sent, or -1
	written    int64
	chunked    bool
	bodyless   bool // 204, 304 or HEAD: body bytes are not sent
	closeAfter bool
	switched   bool  // SwitchProtocols handed the connection to the handler
	err        error // first write error; every later write fails with it

	headMu   sync.Mutex // orders a 100 Continue before the final head
	headSent bool
}

func newResponse(c *conn, req *request) *Response {
	w := &Response{c: c, req: req, declared: -1, closeAfter: req.closeAfter}
	if req.expectContinue {
		req.body.beforeRead = w.sendContinue
	}
	return w
}

// sendContinue answers Expect: 100-continue when the handler first reads
// the body, unless the final response has begun.
func (w *Response) sendContinue() {
	w.headMu.Lock()
	defer w.headMu.Unlock()
	if !w.headSent {
		_, _ = w.c.rwc.Write([]byte(continueLine))
	}
}

// SetClose has the connection close after this response, which then says
// "Connection: close"; it must be called before WriteHeader.
func (w *Response) SetClose() { w.closeAfter = true }

// WriteHeader buffers the status line and fields; later calls do nothing.
// The server owns the framing: contentLength >= 0 is sent as the
// Content-Length, and -1 (unknown) makes the body chunked in HTTP/1.1 or
// ended by the connection's close in HTTP/1.0. Fields named Connection,
// Content-Length or Transfer-Encoding, in any case, and fields that are not
// valid on the wire are dropped. A Date field is added if fields has none.
func (w *Response) WriteHeader(code int, contentLength int64, fields []httpsyntax.Field) {
	if w.status != 0 {
		return
	}
	if code < 200 || code > 999 {
		panic(fmt.Sprintf("server: WriteHeader(%d): informational or invalid status", code))
	}
	w.headMu.Lock()
	w.status, w.headSent = code, true
	w.headMu.Unlock()

	// A body the handler has not begun to read will not be read: say that
	// the connection closes (see conn.handle).
	if !w.req.body.started.Load() && !w.req.body.done() {
		w.closeAfter = true
	}
	noContent := code == http.StatusNoContent || code == http.StatusNotModified
	w.bodyless = noContent || w.req.r.Method == http.MethodHead
	if contentLength >= 0 && !noContent {
		w.declared = contentLength
	}
	switch {
	case w.declared >= 0 || w.bodyless:
	case w.req.r.ProtoMinor == 1:
		w.chunked = true
	default:
		w.closeAfter = true
	}

	bw := w.writer()
	var num [20]byte
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	bw.WriteString(" ")
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
	dated := false
	for _, f := range fields {
		if !httpsyntax.IsToken(f.Name) || !httpsyntax.ValidFieldValue(f.Value) || httpsyntax.ClassOf(f.Name)&httpsyntax.Framing != 0 {
			continue
		}
		dated = dated || strings.EqualFold(f.Name, "Date")
		bw.WriteString(f.Name)
		bw.WriteString(": ")
		bw.WriteString(f.Value)
		bw.WriteString("\r\n")
	}
	if !dated {
		var date [40]byte
		bw.WriteString("Date: ")
		bw.Write(time.Now().UTC().AppendFormat(date[:0], http.TimeFormat))
		bw.WriteString("\r\n")
	}
	if w.declared >= 0 {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], w.declared, 10))
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// Write buffers body bytes, in a chunk of their own if the body is chunked;
// before WriteHeader, it sends a 200 of unknown length.
func (w *Response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK, -1, nil)
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case w.bodyless && w.req.r.Method == http.MethodHead:
		return len(p), nil
	case w.bodyless:
		return 0, http.ErrBodyNotAllowed
	case len(p) == 0:
		return 0, nil
	case w.declared >= 0 && w.written+int64(len(p)) > w.declared:
		return 0, http.ErrContentLength
	}
	bw := w.writer()
	if w.chunked {
		var size [20]byte
		bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked {
		bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what is buffered, the head included (a 200 of unknown length
// before WriteHeader).
func (w *Response) Flush() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK, -1, nil)
	}
	return w.flush()
}

func (w *Response) writer() *bufio.Writer {
	if w.bw == nil {
		w.bw = writerPool.Get().(*bufio.Writer)
		w.bw.Reset(w.c.rwc)
	}
	return w.bw
}

// flush writes the buffer out and gives it back to the pool.
func (w *Response) flush() error {
	if w.bw == nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	w.release()
	return w.err
}

func (w *Response) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		writerPool.Put(w.bw)
		w.bw = nil
	}
}

// finish completes the response after the handler returned; false if the
// connection must close without another request: a write failed, or fewer
// bytes were written than the Content-Length sent.
func (w *Response) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK, 0, nil)
	}
	if w.chunked && w.err == nil {
		w.writer().WriteString("0\r\n\r\n")
	}
	if w.flush() != nil {
		return false
	}
	return w.bodyless || w.declared < 0 || w.written == w.declared
}

// abort drops what was not sent, after a handler panicked; the connection
// is closed next, so the client sees a truncated response, never a
// complete-looking one.
func (w *Response) abort() { w.release() }
