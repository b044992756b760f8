package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// respSecret looks like a credential in a response: no error may quote it.
const respSecret = "sk-resp-Zr8Qw2Lx5Nv7Ty1Pb4Km"

// fields builds a field list from name, value pairs.
func fields(nameValues ...string) []httpsyntax.Field {
	fs := make([]httpsyntax.Field, 0, len(nameValues)/2)
	for i := 0; i+1 < len(nameValues); i += 2 {
		fs = append(fs, httpsyntax.Field{Name: nameValues[i], Value: nameValues[i+1]})
	}
	return fs
}

// TestParseResponse sends two requests to a raw upstream that gives the same
// answer to each, and checks what Do and the body make of it: status,
// fields as received, length, decoded body or the error, and whether the
// connection was reused (one accepted connection) or not (two). No error
// may hold a byte of the response.
func TestParseResponse(t *testing.T) {
	const secretField = "X-Secret: " + respSecret + "\r\n"
	tests := []struct {
		name       string
		answer     string // what the upstream sends for every request
		closeAfter bool   // the upstream closes the connection after answering

		wantErr     error  // Do fails with this (errors.Is) ...
		wantMsg     string // ... or with a message containing this
		wantStatus  int
		wantFields  []httpsyntax.Field
		wantLength  int64
		wantBody    string
		wantBodyErr error // reading the body fails with this, after wantBody
		wantConns   int32 // for the two requests
	}{
		{
			name:       "content-length",
			answer:     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + secretField + "Content-Length: 11\r\n\r\n{\"ok\":true}",
			wantStatus: 200,
			wantFields: fields("Content-Type", "application/json", "X-Secret", respSecret, "Content-Length", "11"),
			wantLength: 11,
			wantBody:   `{"ok":true}`,
			wantConns:  1,
		},
		{
			name:       "content-length zero",
			answer:     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			wantStatus: 200,
			wantFields: fields("Content-Length", "0"),
			wantLength: 0,
			wantConns:  1,
		},
		{
			name:       "duplicate equal content-length accepted",
			answer:     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok",
			wantStatus: 200,
			wantFields: fields("Content-Length", "2", "content-length", "2"),
			wantLength: 2,
			wantBody:   "ok",
			wantConns:  1,
		},
		{
			name:      "differing content-length rejected",
			answer:    "HTTP/1.1 200 OK\r\n" + secretField + "Content-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad Content-Length",
			wantConns: 2,
		},
		{
			name:      "content-length with sign rejected",
			answer:    "HTTP/1.1 200 OK\r\n" + secretField + "Content-Length: +2\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad Content-Length",
			wantConns: 2,
		},
		{
			name:      "content-length list rejected",
			answer:    "HTTP/1.1 200 OK\r\n" + secretField + "Content-Length: 2, 2\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad Content-Length",
			wantConns: 2,
		},
		{
			name:      "content-length too large rejected",
			answer:    "HTTP/1.1 200 OK\r\n" + secretField + "Content-Length: 99999999999999999999\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad Content-Length",
			wantConns: 2,
		},
		{
			name: "chunked with trailers",
			answer: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n" +
				"5\r\nhello\r\n7;ext=1\r\n world!\r\n0\r\nX-Trailer: " + respSecret + "\r\nX-Other: 1\r\n\r\n",
			wantStatus: 200,
			wantFields: fields("Content-Type", "text/event-stream", "Transfer-Encoding", "chunked", "Trailer", "X-Trailer"),
			wantLength: -1,
			wantBody:   "hello world!",
			wantConns:  1, // the trailer section was read to its end
		},
		{
			name:       "chunked in odd case",
			answer:     "HTTP/1.1 200 OK\r\ntransfer-ENCODING: ChUnKeD\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			wantStatus: 200,
			wantFields: fields("transfer-ENCODING", "ChUnKeD"),
			wantLength: -1,
			wantBody:   "ok",
			wantConns:  1,
		},
		{
			name:        "chunked cut short",
			answer:      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
			closeAfter:  true,
			wantStatus:  200,
			wantFields:  fields("Transfer-Encoding", "chunked"),
			wantLength:  -1,
			wantBody:    "hel",
			wantBodyErr: io.ErrUnexpectedEOF,
			wantConns:   2,
		},
		{
			name:        "chunked with a malformed trailer",
			answer:      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Bad " + respSecret + "\r\n\r\n",
			wantStatus:  200,
			wantFields:  fields("Transfer-Encoding", "chunked"),
			wantLength:  -1,
			wantBody:    "ok",
			wantBodyErr: httpsyntax.ErrMalformed,
			wantConns:   2,
		},
		{
			name:      "unsupported transfer-encoding rejected",
			answer:    "HTTP/1.1 200 OK\r\n" + secretField + "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			wantErr:   errMalformedResponse,
			wantMsg:   "unsupported Transfer-Encoding",
			wantConns: 2,
		},
		{
			name:      "identity transfer-encoding rejected",
			answer:    "HTTP/1.1 200 OK\r\n" + secretField + "Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "unsupported Transfer-Encoding",
			wantConns: 2,
		},
		{
			name:      "transfer-encoding twice rejected",
			answer:    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			wantErr:   errMalformedResponse,
			wantMsg:   "unsupported Transfer-Encoding",
			wantConns: 2,
		},
		{
			// RFC 9112, 6.3, 3: the chunked framing wins, and the
			// connection is not trusted with another request.
			name:       "transfer-encoding and content-length",
			answer:     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			wantStatus: 200,
			wantFields: fields("Content-Length", "100", "Transfer-Encoding", "chunked"),
			wantLength: -1,
			wantBody:   "ok",
			wantConns:  2,
		},
		{
			name:       "204 with no body",
			answer:     "HTTP/1.1 204 No Content\r\n" + secretField + "\r\n",
			wantStatus: 204,
			wantFields: fields("X-Secret", respSecret),
			wantLength: 0,
			wantConns:  1,
		},
		{
			// A 304's Content-Length describes the representation, not a
			// body (RFC 9110, 8.6).
			name:       "304 with content-length has no body",
			answer:     "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
			wantStatus: 304,
			wantFields: fields("Content-Length", "5"),
			wantLength: 0,
			wantConns:  1,
		},
		{
			name:       "body until close",
			answer:     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: until close\n\n",
			closeAfter: true,
			wantStatus: 200,
			wantFields: fields("Content-Type", "text/event-stream"),
			wantLength: -1,
			wantBody:   "data: until close\n\n",
			wantConns:  2,
		},
		{
			name:        "short content-length body",
			answer:      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
			closeAfter:  true,
			wantStatus:  200,
			wantFields:  fields("Content-Length", "10"),
			wantLength:  10,
			wantBody:    "abc",
			wantBodyErr: io.ErrUnexpectedEOF,
			wantConns:   2,
		},
		{
			name:       "HTTP/1.1 with connection close",
			answer:     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			wantStatus: 200,
			wantFields: fields("Connection", "close", "Content-Length", "2"),
			wantLength: 2,
			wantBody:   "ok",
			wantConns:  2,
		},
		{
			name:       "HTTP/1.0 not reused",
			answer:     "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
			wantStatus: 200,
			wantFields: fields("Content-Length", "2"),
			wantLength: 2,
			wantBody:   "ok",
			wantConns:  2,
		},
		{
			name:       "HTTP/1.0 with keep-alive reused",
			answer:     "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
			wantStatus: 200,
			wantFields: fields("Connection", "Keep-Alive", "Content-Length", "2"),
			wantLength: 2,
			wantBody:   "ok",
			wantConns:  1,
		},
		{
			name:      "HTTP/1.0 with chunked framing rejected",
			answer:    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			wantErr:   errMalformedResponse,
			wantMsg:   "Transfer-Encoding in an HTTP/1.0 response",
			wantConns: 2,
		},
		{
			name:      "1xx with unsupported transfer-encoding rejected",
			answer:    "HTTP/1.1 100 Continue\r\nTransfer-Encoding: gzip\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "unsupported Transfer-Encoding",
			wantConns: 2,
		},
		{
			name: "1xx skipped then final",
			answer: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n" + secretField + "\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			wantStatus: 200,
			wantFields: fields("Content-Length", "2"),
			wantLength: 2,
			wantBody:   "ok",
			wantConns:  1,
		},
		{
			name:      "too many 1xx",
			answer:    strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", max1xx+1) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			wantMsg:   "too many 1xx responses",
			wantConns: 2,
		},
		{
			// We never ask to switch protocols: a 101 is an error, and the
			// connection is not reused.
			name:      "101 refused",
			answer:    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
			wantMsg:   "upstream switched protocols",
			wantConns: 2,
		},
		{
			name:      "HTTP/2.0 status line",
			answer:    "HTTP/2.0 200 " + respSecret + "\r\nContent-Length: 2\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad status line",
			wantConns: 2,
		},
		{
			name:      "two-digit status code",
			answer:    "HTTP/1.1 20 " + respSecret + "\r\nContent-Length: 2\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad status line",
			wantConns: 2,
		},
		{
			name:      "status code below 100",
			answer:    "HTTP/1.1 099 " + respSecret + "\r\nContent-Length: 2\r\n\r\nok",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad status line",
			wantConns: 2,
		},
		{
			name:      "garbage status line",
			answer:    respSecret + " garbage\r\n\r\n",
			wantErr:   errMalformedResponse,
			wantMsg:   "bad status line",
			wantConns: 2,
		},
		{
			name:      "malformed field line",
			answer:    "HTTP/1.1 200 OK\r\nX-Secret " + respSecret + "\r\nContent-Length: 2\r\n\r\nok",
			wantErr:   httpsyntax.ErrMalformed,
			wantConns: 2,
		},
		// Line ends: CRLF only, as for requests (issue 12).
		{
			name:      "bare LF line ends",
			answer:    "HTTP/1.1 200 OK\nContent-Length: 2\n" + secretField + "\nok",
			wantErr:   httpsyntax.ErrMalformed,
			wantConns: 2,
		},
		{
			name:      "bare LF in a field",
			answer:    "HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 2\r\n" + secretField + "\r\nok",
			wantErr:   httpsyntax.ErrMalformed,
			wantConns: 2,
		},
		{
			name:      "bare CR in the reason phrase",
			answer:    "HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n" + secretField + "\r\nok",
			wantErr:   httpsyntax.ErrMalformed,
			wantConns: 2,
		},
		{
			name:      "obs-fold",
			answer:    "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n" + secretField + "\r\nok",
			wantErr:   httpsyntax.ErrMalformed,
			wantConns: 2,
		},
		{
			name:        "chunked with a bare LF in its trailer",
			answer:      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\n\r\n",
			wantStatus:  200,
			wantFields:  fields("Transfer-Encoding", "chunked"),
			wantLength:  -1,
			wantBody:    "ok",
			wantBodyErr: httpsyntax.ErrMalformed,
			wantConns:   2,
		},
		{
			name:      "oversized field",
			answer:    "HTTP/1.1 200 OK\r\nX-Secret: " + strings.Repeat(respSecret, maxResponseHead/len(respSecret)+1) + "\r\n\r\n",
			wantErr:   httpsyntax.ErrTooLarge,
			wantConns: 2,
		},
		{
			name:      "oversized head of small fields",
			answer:    "HTTP/1.1 200 OK\r\n" + strings.Repeat(secretField, maxResponseHead/len(secretField)+1) + "\r\n",
			wantErr:   httpsyntax.ErrTooLarge,
			wantConns: 2,
		},
		{
			name:       "head cut short",
			answer:     "HTTP/1.1 200 OK\r\n" + secretField,
			closeAfter: true,
			wantMsg:    "reading response header",
			wantConns:  2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(c net.Conn) {
				c.SetDeadline(time.Now().Add(wait))
				br := bufio.NewReader(c)
				for {
					if _, _, err := readRequest(br); err != nil {
						return
					}
					if _, err := io.WriteString(c, tc.answer); err != nil || tc.closeAfter {
						return
					}
				}
			})
			c := newClient(t, srv.url("/v1/responses"), nil)
			for i := range 2 {
				exchangeOnce(t, c, i, tc.wantErr, tc.wantMsg, func(resp *Response) {
					if resp.StatusCode != tc.wantStatus {
						t.Errorf("request %d: status: got %d, want %d", i, resp.StatusCode, tc.wantStatus)
					}
					if !reflect.DeepEqual(resp.Fields, tc.wantFields) {
						t.Errorf("request %d: fields:\ngot  %q\nwant %q", i, resp.Fields, tc.wantFields)
					}
					if resp.ContentLength != tc.wantLength {
						t.Errorf("request %d: content length: got %d, want %d", i, resp.ContentLength, tc.wantLength)
					}
					body, err := io.ReadAll(resp.Body)
					if string(body) != tc.wantBody {
						t.Errorf("request %d: body: got %q, want %q", i, body, tc.wantBody)
					}
					switch {
					case tc.wantBodyErr == nil && err != nil:
						t.Errorf("request %d: reading body: %v", i, err)
					case tc.wantBodyErr != nil && !errors.Is(err, tc.wantBodyErr):
						// io.ReadAll turns a clean EOF into nil.
						t.Errorf("request %d: reading body: got %v, want %v", i, err, tc.wantBodyErr)
					case err != nil && strings.Contains(err.Error(), respSecret):
						t.Errorf("request %d: body error %q quotes the response", i, err)
					}
				})
			}
			if n := srv.accepts.Load(); n != tc.wantConns {
				t.Errorf("connections for two requests: got %d, want %d", n, tc.wantConns)
			}
		})
	}
}

// exchangeOnce sends one request with c and checks Do's error against
// wantErr and wantMsg; when neither is set it hands the response to check
// and closes its body afterwards.
func exchangeOnce(t *testing.T, c *Client, i int, wantErr error, wantMsg string, check func(*Response)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := c.Do(ctx, fields("Content-Type", "application/json"), strings.NewReader("{}"), 2)
	if wantErr == nil && wantMsg == "" {
		if err != nil {
			t.Fatalf("request %d: Do: %v", i, err)
		}
		defer resp.Body.Close()
		check(resp)
		return
	}
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request %d: Do: got status %d, want an error", i, resp.StatusCode)
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Errorf("request %d: Do: got %v, want %v", i, err, wantErr)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("request %d: Do: got %q, want it to contain %q", i, err, wantMsg)
	}
	if strings.Contains(err.Error(), respSecret) || strings.Contains(err.Error(), "garbage") {
		t.Errorf("request %d: Do: error %q quotes the response", i, err)
	}
}

// FuzzParseResponse feeds arbitrary upstream bytes to the response reader:
// it never panics, a response it accepts has a status of three digits and
// fields that are valid on the wire, its body reads to an end, and no error
// carries the secret-looking field value the seeds put in the head.
func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nX-Secret: " + respSecret + "\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nX-Secret: " + respSecret + "\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: " + respSecret + "\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nX-Secret: " + respSecret + "\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nbody until close",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\nX-Secret: " + respSecret + "\r\n\r\nok",
		"HTTP/1.1 200 OK\r\n X-Secret: " + respSecret + "\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h httpsyntax.Head
		resp, _, err := parseResponse(bufio.NewReader(bytes.NewReader(in)), &h)
		if err != nil {
			if strings.Contains(err.Error(), respSecret) {
				t.Fatalf("error %q holds a response byte", err)
			}
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 {
			t.Fatalf("status %d accepted", resp.StatusCode)
		}
		for _, fl := range resp.Fields {
			if !httpsyntax.IsToken(fl.Name) || !httpsyntax.ValidFieldValue(fl.Value) {
				t.Fatalf("field %q: %q accepted", fl.Name, fl.Value)
			}
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil && strings.Contains(err.Error(), respSecret) {
			t.Fatalf("body error %q holds a response byte", err)
		}
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			t.Fatalf("body of %d bytes read cleanly, want Content-Length %d", n, resp.ContentLength)
		}
	})
}
