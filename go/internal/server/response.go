package server

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
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

// response is the http.ResponseWriter of one request. Its methods are
// called from the handler's goroutine, except sendContinue (see body).
type response struct {
	c      *conn
	req    *request
	header http.Header
	bw     *bufio.Writer // from writerPool while unflushed bytes wait

	status     int   // 0 until WriteHeader
	declared   int64 // Content-Length sent, or -1
	written    int64
	chunked    bool
	bodyless   bool // 204, 304 or HEAD: body bytes are not sent
	closeAfter bool
	err        error // first write error; every later write fails with it

	headMu   sync.Mutex // orders a 100 Continue before the final head
	headSent bool
}

func newResponse(c *conn, req *request) *response {
	w := &response{c: c, req: req, header: make(http.Header), declared: -1, closeAfter: req.closeAfter}
	if req.expectContinue {
		req.body.beforeRead = w.sendContinue
	}
	return w
}

// sendContinue answers Expect: 100-continue when the handler first reads
// the body, unless the final response has begun.
func (w *response) sendContinue() {
	w.headMu.Lock()
	defer w.headMu.Unlock()
	if !w.headSent {
		_, _ = w.c.rwc.Write([]byte(continueLine))
	}
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader buffers the status line and header fields. The server owns
// the framing: the handler's Content-Length is kept when valid, otherwise
// the body is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0);
// its Connection and Transfer-Encoding fields are replaced.
func (w *response) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 200 || code > 999 {
		panic(fmt.Sprintf("server: WriteHeader(%d): informational or invalid status", code))
	}
	w.headMu.Lock()
	w.status, w.headSent = code, true
	w.headMu.Unlock()

	h := w.header
	// A body the handler has not begun to read will not be read: say that
	// the connection closes (see conn.handle).
	if hasToken(h["Connection"], "close") || !w.req.body.started.Load() && !w.req.body.done() {
		w.closeAfter = true
	}
	noContent := code == http.StatusNoContent || code == http.StatusNotModified
	w.bodyless = noContent || w.req.r.Method == http.MethodHead
	if n, ok := parseLength(h["Content-Length"]); ok && !noContent {
		w.declared = n
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
	var keyBuf [32]string // a response has a dozen fields or so
	keys := keyBuf[:0]
	for k := range h {
		if httpsyntax.IsToken(k) && !framing(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			if httpsyntax.ValidFieldValue(v) {
				bw.WriteString(k)
				bw.WriteString(": ")
				bw.WriteString(v)
				bw.WriteString("\r\n")
			}
		}
	}
	if _, ok := h["Date"]; !ok {
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

// Write buffers body bytes, in a chunk of their own if the body is chunked.
func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
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

// FlushError sends what is buffered, the head included; the
// http.ResponseController calls it.
func (w *response) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.flush()
}

// Flush is http.Flusher's FlushError.
func (w *response) Flush() { _ = w.FlushError() }

// EnableFullDuplex is what http.ResponseController asks for before a
// handler reads the request body while writing the response. This server
// always allows that.
func (w *response) EnableFullDuplex() error { return nil }

func (w *response) writer() *bufio.Writer {
	if w.bw == nil {
		w.bw = writerPool.Get().(*bufio.Writer)
		w.bw.Reset(w.c.rwc)
	}
	return w.bw
}

// flush writes the buffer out and gives it back to the pool.
func (w *response) flush() error {
	if w.bw == nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	w.release()
	return w.err
}

func (w *response) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		writerPool.Put(w.bw)
		w.bw = nil
	}
}

// finish completes the response after the handler returned; false if the
// connection must close without another request: a write failed, or fewer
// bytes were written than the Content-Length sent.
func (w *response) finish() bool {
	if w.status == 0 {
		if _, ok := w.header["Content-Length"]; !ok {
			w.header["Content-Length"] = []string{"0"}
		}
		w.WriteHeader(http.StatusOK)
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
func (w *response) abort() { w.release() }

// framing reports whether k, in any case, is a field the server writes
// itself.
func framing(k string) bool {
	return strings.EqualFold(k, "Connection") || strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Transfer-Encoding")
}
