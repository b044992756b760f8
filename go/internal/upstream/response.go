package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// maxResponseHead bounds a response head (status line and fields).
const maxResponseHead = 256 << 10

// Response is the upstream's final answer.
type Response struct {
	StatusCode int
	// Fields are the header fields in the order received, the framing
	// fields (Connection, Content-Length, Transfer-Encoding) included.
	Fields []httpsyntax.Field
	// ContentLength is the body's length, or -1 when it is not known
	// (chunked, or delimited by the connection's close).
	ContentLength int64
	// Body is the body, decoded from its chunked framing. It also has a
	// method Wait() (see respBody.Wait). The caller must close it.
	Body io.ReadCloser
}

// errMalformedResponse is a response that breaks RFC 9112's syntax.
var errMalformedResponse = errors.New("malformed response from upstream")

// parseResponse reads one response head from br, using h's scratch space,
// and frames its body (RFC 9112, 6.3). closeAfter reports that the
// connection cannot carry another request after this response. Errors
// never hold a byte of the response.
func parseResponse(br *bufio.Reader, h *httpsyntax.Head) (resp *Response, closeAfter bool, err error) {
	// Head.Read skips empty lines before a start line, which RFC 9112, 2.2
	// asks of servers only; a response starts with its status line, as
	// net/http requires (FuzzResponseParity, issue 12).
	if b, _ := br.Peek(1); len(b) == 1 && (b[0] == '\r' || b[0] == '\n') {
		return nil, false, fmt.Errorf("%w: empty line before the status line", errMalformedResponse)
	}
	if err := h.Read(br, maxResponseHead, true); err != nil {
		if errors.Is(err, httpsyntax.ErrMalformed) || errors.Is(err, httpsyntax.ErrTooLarge) {
			return nil, false, fmt.Errorf("%w: %w", errMalformedResponse, err)
		}
		return nil, false, err
	}
	// status-line = HTTP-version SP status-code SP [ reason-phrase ]
	proto, rest, _ := strings.Cut(h.Start, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if (proto != "HTTP/1.1" && proto != "HTTP/1.0") || len(code) != 3 || err != nil || status < 100 {
		return nil, false, fmt.Errorf("%w: bad status line", errMalformedResponse)
	}
	resp = &Response{StatusCode: status, Fields: h.Fields, ContentLength: -1}
	closeAfter = proto == "HTTP/1.0" && !httpsyntax.HasToken(h.Fields, "Connection", "keep-alive")
	closeAfter = closeAfter || httpsyntax.HasToken(h.Fields, "Connection", "close")
	// Every Content-Length is checked, even where it frames nothing (1xx,
	// 204, 304, beside chunked), as net/http checks it (issue 12).
	cl, nCL := httpsyntax.Lookup(h.Fields, "Content-Length")
	var length int64
	if nCL > 0 {
		n, ok := parseLength(h.Fields, cl)
		if !ok {
			return nil, false, fmt.Errorf("%w: bad Content-Length", errMalformedResponse)
		}
		length = n
	}
	// Every Transfer-Encoding is checked too. Only chunked is asked for (we
	// send no TE): anything else cannot be framed. In HTTP/1.0 it is faulty
	// framing (RFC 9112, 6.1), which net/http reads as a body delimited by
	// the close; we refuse it (FuzzResponseParity, issue 12).
	te, nTE := httpsyntax.Lookup(h.Fields, "Transfer-Encoding")
	if nTE > 0 && (nTE != 1 || !strings.EqualFold(te, "chunked")) {
		return nil, false, fmt.Errorf("%w: unsupported Transfer-Encoding", errMalformedResponse)
	}
	if nTE > 0 && proto == "HTTP/1.0" {
		return nil, false, fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 response", errMalformedResponse)
	}
	if status < 200 {
		// Informational: no body (RFC 9110, 15.2); the exchange skips it,
		// or refuses a 101.
		resp.ContentLength, resp.Body = 0, http.NoBody
		return resp, closeAfter, nil
	}
	switch {
	case status == http.StatusNoContent || status == http.StatusNotModified:
		resp.ContentLength, resp.Body = 0, http.NoBody
	case nTE > 0:
		// A Content-Length beside chunked is ignored, and the connection
		// not reused (RFC 9112, 6.3, 3).
		closeAfter = closeAfter || nCL > 0
		resp.Body = &chunkedBody{r: httputil.NewChunkedReader(br), br: br, head: h}
	case nCL > 0:
		resp.ContentLength, resp.Body = length, &fixedBody{br: br, left: length}
		if length == 0 {
			resp.Body = http.NoBody
		}
	default:
		closeAfter = true // the body ends with the connection
		resp.Body = io.NopCloser(br)
	}
	return resp, closeAfter, nil
}

// parseLength accepts Content-Length fields that all hold the same run of
// digits (RFC 9110, 8.6).
func parseLength(fields []httpsyntax.Field, first string) (int64, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Content-Length") && f.Value != first {
			return 0, false
		}
	}
	return httpsyntax.ParseLength(first)
}

// fixedBody is a body of known length; ending early is an error.
type fixedBody struct {
	br   *bufio.Reader
	left int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

// chunkedBody decodes a chunked body and reads its trailer section, which
// is dropped.
type chunkedBody struct {
	r    io.Reader
	br   *bufio.Reader
	head *httpsyntax.Head
	done bool
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.done = true
		if terr := b.head.Read(b.br, maxResponseHead, false); terr != nil {
			if terr == io.EOF {
				terr = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("reading trailer section: %w", terr)
		}
	}
	return n, err
}

func (b *chunkedBody) Close() error { return nil }
