package upstream

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		url  string
		auth []byte
	}{
		{name: "ftp scheme", url: "ftp://example.com/x", auth: testAuth},
		{name: "no host", url: "https:///v1/responses", auth: testAuth},
		{name: "relative", url: "/v1/responses", auth: testAuth},
		{name: "user info", url: "https://u:p@example.com/v1", auth: testAuth},
		{name: "opaque", url: "https:opaque", auth: testAuth},
		{name: "empty auth", url: "https://example.com/v1", auth: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := New(Config{URL: u, Auth: tc.auth}); err == nil {
				t.Errorf("New(%q): got nil error, want one", tc.url)
			}
		})
	}
	if _, err := New(Config{Auth: testAuth}); err == nil {
		t.Errorf("New without URL: got nil error, want one")
	}
}

// TestWireBytes checks every byte of the request: verbatim target, Host with
// port, caller fields in the caller's order (repeated names included, not
// grouped or sorted), the Auth line exactly once, framing, body.
func TestWireBytes(t *testing.T) {
	tests := []struct {
		name          string
		body          io.Reader
		contentLength int64
		wantTail      string
	}{
		{
			name:          "content-length",
			body:          &piecesReader{pieces: []string{`{"model":`, `"x"}`}},
			contentLength: 13,
			wantTail:      "Content-Length: 13\r\n\r\n{\"model\":\"x\"}",
		},
		// A body of unknown length that ends within the inline window is
		// read whole, then sent with its length (issue 12).
		{
			name:          "unknown length, small",
			body:          &piecesReader{pieces: []string{"hello", " world!"}},
			contentLength: -1,
			wantTail:      "Content-Length: 12\r\n\r\nhello world!",
		},
		{
			name:          "unknown length, eof with data",
			body:          &piecesReader{pieces: []string{"abc"}, eofWithLast: true},
			contentLength: -1,
			wantTail:      "Content-Length: 3\r\n\r\nabc",
		},
		{
			name:          "unknown length, empty",
			body:          nil,
			contentLength: -1,
			wantTail:      "Content-Length: 0\r\n\r\n",
		},
		{
			name:          "unknown length, exactly the window",
			body:          strings.NewReader(strings.Repeat("a", bodyBufSize)),
			contentLength: -1,
			wantTail:      fmt.Sprintf("Content-Length: %d\r\n\r\n%s", bodyBufSize, strings.Repeat("a", bodyBufSize)),
		},
		{
			name:          "unknown length, past the window: chunked",
			body:          &piecesReader{pieces: []string{strings.Repeat("a", bodyBufSize-1), "bc", "d"}},
			contentLength: -1,
			// The read-ahead goes out in copy-buffer chunks, then the rest.
			wantTail: "Transfer-Encoding: chunked\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n", bodyBufSize-chunkPre-chunkPost, strings.Repeat("a", bodyBufSize-chunkPre-chunkPost)) +
				fmt.Sprintf("%x\r\n%s\r\n", chunkPre+chunkPost+1, strings.Repeat("a", chunkPre+chunkPost-1)+"bc") +
				"1\r\nd\r\n0\r\n\r\n",
		},
		{
			name:          "empty",
			body:          nil,
			contentLength: 0,
			wantTail:      "Content-Length: 0\r\n\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 1)
			srv := newRawServer(t, func(c net.Conn) {
				var rec bytes.Buffer
				br := bufio.NewReader(io.TeeReader(c, &rec))
				if _, _, err := readRequest(br); err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- rec.String()
				io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			})
			const target = "/openai/deployments/dep/responses?api-version=2025-04-01-preview&x=%2F&y=a+b"
			c := newClient(t, srv.url(target), nil)
			fields := []httpsyntax.Field{
				{Name: "X-Multi", Value: "a"},
				{Name: "content-type", Value: "application/json"},
				{Name: "Accept", Value: "text/event-stream"},
				{Name: "X-Multi", Value: "b"},
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			resp, err := c.Do(ctx, fields, tc.body, tc.contentLength)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()
			want := "POST " + target + " HTTP/1.1\r\n" +
				"Host: " + srv.ln.Addr().String() + "\r\n" +
				"X-Multi: a\r\n" +
				"content-type: application/json\r\n" +
				"Accept: text/event-stream\r\n" +
				"X-Multi: b\r\n" +
				string(testAuth) + tc.wantTail
			if g := within(t, got, wait, "the request"); g != want {
				t.Errorf("wire bytes:\ngot  %q\nwant %q", g, want)
			}
		})
	}
}

// TestHeaderRejected: invalid or reserved headers are an error, nothing is
// sent, and the error never quotes the value.
func TestHeaderRejected(t *testing.T) {
	tests := []struct {
		name  string
		field httpsyntax.Field
	}{
		{name: "CRLF in value", field: httpsyntax.Field{Name: "X-A", Value: "secret\r\nX-Evil: 1"}},
		{name: "LF in value", field: httpsyntax.Field{Name: "X-A", Value: "secret\nX"}},
		{name: "NUL in value", field: httpsyntax.Field{Name: "X-A", Value: "secret\x00"}},
		{name: "space in name", field: httpsyntax.Field{Name: "X A", Value: "secret"}},
		{name: "colon in name", field: httpsyntax.Field{Name: "X:A", Value: "secret"}},
		{name: "empty name", field: httpsyntax.Field{Name: "", Value: "secret"}},
		{name: "authorization", field: httpsyntax.Field{Name: "Authorization", Value: "Bearer secret"}},
		{name: "lowercase host", field: httpsyntax.Field{Name: "host", Value: "secret.example"}},
		{name: "content-length", field: httpsyntax.Field{Name: "Content-Length", Value: "1"}},
		{name: "transfer-encoding", field: httpsyntax.Field{Name: "Transfer-Encoding", Value: "chunked"}},
	}
	srv := newRawServer(t, serveOK)
	c := newClient(t, srv.url("/v1/responses"), nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// After a valid field: the check covers every field, not the first.
			fields := []httpsyntax.Field{{Name: "Accept", Value: "application/json"}, tc.field}
			_, err := c.Do(context.Background(), fields, nil, 0)
			if err == nil {
				t.Fatal("Do: got nil error, want one")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes the header value", err)
			}
		})
	}
	if n := srv.accepts.Load(); n != 0 {
		t.Errorf("connections: got %d, want 0", n)
	}
}

func TestKeepAliveAndInformational(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := newClient(t, srv.url("/v1/responses"), nil)
	for i := range 5 {
		status, body := get(t, c, `{"i":1}`)
		if status != 200 || body != "ok" {
			t.Fatalf("request %d: got %d %q, want 200 \"ok\"", i, status, body)
		}
	}
	if n := srv.accepts.Load(); n != 1 {
		t.Errorf("connections: got %d, want 1", n)
	}
}

func TestRedirectAndGzipPassThrough(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, `{"ok":true}`)
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		default:
			t.Errorf("unexpected request to %q", r.URL.Path)
		}
	}))
	defer srv.Close()

	c := newClient(t, srv.URL+"/redirect", nil)
	status, fields, _ := getFields(t, c, "{}")
	if status != http.StatusFound {
		t.Errorf("redirect status: got %d, want %d", status, http.StatusFound)
	}
	if got, _ := httpsyntax.Lookup(fields, "Location"); got != "/elsewhere" {
		t.Errorf("redirect Location: got %q, want %q", got, "/elsewhere")
	}

	c = newClient(t, srv.URL+"/gzip", nil)
	status, fields, body := getFields(t, c, "{}")
	if status != 200 || body != gz.String() {
		t.Errorf("gzip: got %d %q, want 200 %q", status, body, gz.String())
	}
	if got, _ := httpsyntax.Lookup(fields, "Content-Encoding"); got != "gzip" {
		t.Errorf("gzip Content-Encoding: got %q, want %q", got, "gzip")
	}
}

// TestStreaming proves per-event delivery: the upstream sends event 2 only
// after the test has read event 1 from the response body.
func TestStreaming(t *testing.T) {
	const ev1, ev2 = "data: one\n\n", "data: two\n\n"
	readEv1 := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ev1)
		w.(http.Flusher).Flush()
		select {
		case <-readEv1:
		case <-time.After(wait):
			t.Error("event 1 never reached the client")
			return
		}
		io.WriteString(w, ev2)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/v1/responses", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	resp, err := c.Do(ctx, nil, strings.NewReader("{}"), 2)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer resp.Body.Close()
	got := make([]byte, len(ev1))
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != ev1 {
		t.Fatalf("event 1: got %q (%v), want %q", got, err, ev1)
	}
	close(readEv1)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != ev2 {
		t.Fatalf("event 2: got %q (%v), want %q", rest, err, ev2)
	}
}

func TestCancel(t *testing.T) {
	t.Run("mid-stream", func(t *testing.T) {
		gone := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(gone)
			case <-time.After(wait):
			}
		}))
		defer srv.Close()
		c := newClient(t, srv.URL+"/v1/responses", nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := c.Do(ctx, nil, nil, 0)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 64)
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatalf("reading event 1: %v", err)
		}
		cancel()
		within(t, gone, 2*time.Second, "the upstream to see the connection close")
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: got %v, want context.Canceled", err)
		}
	})
	t.Run("waiting for headers", func(t *testing.T) {
		gotReq, closed := make(chan struct{}), make(chan struct{})
		srv := newRawServer(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			if _, _, err := readRequest(br); err != nil {
				return
			}
			close(gotReq)
			c.SetReadDeadline(time.Now().Add(wait))
			if _, err := br.ReadByte(); err == io.EOF {
				close(closed)
			}
		})
		c := newClient(t, srv.url("/v1/responses"), nil)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := c.Do(ctx, nil, nil, 0)
			errc <- err
		}()
		within(t, gotReq, wait, "the request")
		cancel()
		if err := within(t, errc, 2*time.Second, "Do to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("Do: got %v, want context.Canceled", err)
		}
		within(t, closed, 2*time.Second, "the upstream to see the connection close")
	})
}

func TestResponseHeaderTimeout(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
	})
	c := newClient(t, srv.url("/v1/responses"), func(cfg *Config) { cfg.ResponseHeaderTimeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := c.Do(context.Background(), nil, nil, 0)
	if err == nil || !strings.Contains(err.Error(), "no response header within") {
		t.Errorf("Do: got %v, want a response header timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v, want about 100ms", d)
	}
}

var errBoom = errors.New("client went away")

// TestBodyReadError: a failing body aborts the request; the upstream never
// sees it complete and the error wraps the cause. A small body of known
// length is read before anything is sent, so its failure opens no connection.
func TestBodyReadError(t *testing.T) {
	const streamed = bodyBufSize + 10 // too large to send inline with the head
	tests := []struct {
		name          string
		body          io.Reader
		contentLength int64
		wantErr       error
		wantWire      string // what the upstream received after the head
		wantNoConn    bool
	}{
		{
			name:          "unknown length",
			body:          &piecesReader{pieces: []string{strings.Repeat("a", streamed)}, err: errBoom},
			contentLength: -1,
			wantErr:       errBoom,
			// What was read ahead (the window and a byte) in copy-buffer
			// chunks, then the rest; no last chunk.
			wantWire: fmt.Sprintf("%x\r\n%s\r\n", bodyBufSize-chunkPre-chunkPost, strings.Repeat("a", bodyBufSize-chunkPre-chunkPost)) +
				fmt.Sprintf("%x\r\n%s\r\n", chunkPre+chunkPost+1, strings.Repeat("a", chunkPre+chunkPost+1)) +
				fmt.Sprintf("%x\r\n%s\r\n", streamed-bodyBufSize-1, strings.Repeat("a", streamed-bodyBufSize-1)),
		},
		{
			name:          "unknown length within the window",
			body:          &piecesReader{pieces: []string{"part"}, err: errBoom},
			contentLength: -1,
			wantErr:       errBoom,
			wantNoConn:    true,
		},
		{
			name:          "content-length",
			body:          &piecesReader{pieces: []string{"part"}, err: errBoom},
			contentLength: streamed,
			wantErr:       errBoom,
			wantWire:      "part",
		},
		{
			name:          "short body",
			body:          strings.NewReader("abc"),
			contentLength: streamed,
			wantErr:       io.ErrUnexpectedEOF,
			wantWire:      "abc",
		},
		{
			name:          "content-length inline",
			body:          &piecesReader{pieces: []string{"part"}, err: errBoom},
			contentLength: 10,
			wantErr:       errBoom,
			wantNoConn:    true,
		},
		{
			name:          "short body inline",
			body:          strings.NewReader("abc"),
			contentLength: 10,
			wantErr:       io.ErrUnexpectedEOF,
			wantNoConn:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 1)
			srv := newRawServer(t, func(c net.Conn) {
				c.SetReadDeadline(time.Now().Add(wait))
				all, _ := io.ReadAll(c)
				_, after, _ := strings.Cut(string(all), "\r\n\r\n")
				got <- after
			})
			c := newClient(t, srv.url("/v1/responses"), nil)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := c.Do(ctx, nil, tc.body, tc.contentLength)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Do: got %v, want %v", err, tc.wantErr)
			}
			if tc.wantNoConn {
				if n := srv.accepts.Load(); n != 0 {
					t.Errorf("connections: got %d, want 0", n)
				}
				return
			}
			if g := within(t, got, wait, "the upstream to see the close"); g != tc.wantWire {
				t.Errorf("upstream received: got %q, want %q", g, tc.wantWire)
			}
			if pooled(c) != 0 {
				t.Errorf("aborted connection was pooled")
			}
		})
	}
}

// TestEarlyResponseNotReused: the upstream answers before the body is
// written; the exchange completes but the connection is not reused.
func TestEarlyResponseNotReused(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig"); err != nil {
				return
			}
		}
	})
	c := newClient(t, srv.url("/v1/responses"), nil)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := c.Do(ctx, nil, pr, 1<<20)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || string(b) != "big" || err != nil {
		t.Fatalf("got %d %q (%v), want 413 \"big\"", resp.StatusCode, b, err)
	}
	if pooled(c) != 0 {
		t.Errorf("connection with a half-written body was pooled")
	}
}

func TestDeadUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, "http://"+addr+"/v1/responses", nil)
	start := time.Now()
	_, err = c.Do(context.Background(), nil, nil, 0)
	if err == nil || !strings.Contains(err.Error(), "dialing upstream") {
		t.Errorf("Do: got %v, want a dial error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("dial error took %v, want it fast", d)
	}
}

func TestStalePooledConn(t *testing.T) {
	t.Run("closed while idle", func(t *testing.T) {
		closed := make(chan struct{}, 1)
		srv := newRawServer(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			c.Close()
			closed <- struct{}{}
		})
		c := newClient(t, srv.url("/v1/responses"), nil)
		get(t, c, "{}")
		within(t, closed, wait, "the upstream to close")
		time.Sleep(50 * time.Millisecond) // let the FIN arrive
		if status, body := get(t, c, "{}"); status != 200 || body != "ok" {
			t.Errorf("second request: got %d %q, want 200 \"ok\"", status, body)
		}
		if n := srv.accepts.Load(); n != 2 {
			t.Errorf("connections: got %d, want 2", n)
		}
	})
	// The upstream reads the next request in full on a reused connection,
	// then closes without answering: the request may have been acted on, so
	// it is never sent again (issue 15); the caller gets an error (a 502).
	for _, body := range []string{"", "{}", strings.Repeat("x", bodyBufSize+1)} {
		t.Run(fmt.Sprintf("closed after a request of %d bytes: not sent again", len(body)), func(t *testing.T) {
			var requests atomic.Int32
			srv := newRawServer(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					if _, _, err := readRequest(br); err != nil {
						return
					}
					if requests.Add(1) == 2 {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			c := newClient(t, srv.url("/v1/responses"), nil)
			get(t, c, body)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			resp, err := c.Do(ctx, nil, strings.NewReader(body), int64(len(body)))
			if err == nil {
				resp.Body.Close()
				t.Fatal("Do: got nil error, want one (the request was written)")
			}
			if !strings.Contains(err.Error(), "reading response header") {
				t.Errorf("Do: got %q, want a response header error", err)
			}
			time.Sleep(50 * time.Millisecond) // a second send would arrive by now
			if n := requests.Load(); n != 2 {
				t.Errorf("requests seen by the upstream: got %d, want 2", n)
			}
		})
	}
}

// TestConcurrent shares one client between many goroutines: every request
// succeeds and connections are reused rather than dialled per request.
func TestConcurrent(t *testing.T) {
	const workers, each = 32, 20
	srv := newRawServer(t, serveOK)
	c := newClient(t, srv.url("/v1/responses"), nil)
	errc := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				resp, err := c.Do(context.Background(), nil, strings.NewReader("{}"), 2)
				if err != nil {
					errc <- err
					return
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := within(t, errc, 4*wait, "a worker"); err != nil {
			t.Errorf("worker: %v", err)
		}
	}
	if n := srv.accepts.Load(); n > 2*workers {
		t.Errorf("connections: got %d, want at most %d for %d requests", n, 2*workers, workers*each)
	}
}

// TestWait: Wait returns once the next Read has something (data, the end,
// an error), and not before; it never waits for bytes a body cannot have.
func TestWait(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name   string
		answer string // what the upstream sends at once, before release
		later  string // what it sends after release ("" : nothing, keeps the connection open)
		cancel bool   // cancel the request instead of releasing the upstream
		reset  bool   // on release, the upstream resets the connection
		reads  int    // Reads before Wait
		want   string // the Read after Wait
		fail   bool   // that Read fails
	}{
		{name: "next event", answer: head + "a\r\ndata: one\n\r\n", later: "a\r\ndata: two\n\r\n", reads: 1, want: "data: two\n"},
		{name: "end of chunked body", answer: head + "a\r\ndata: one\n\r\n", later: "0\r\n\r\n", reads: 1},
		{name: "cancelled", answer: head + "a\r\ndata: one\n\r\n", cancel: true, reads: 1, fail: true},
		{name: "reset, close-delimited body", answer: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: one\n\n", reset: true, reads: 1, fail: true},
		{name: "known length read", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", reads: 1},
		{name: "no body", answer: "HTTP/1.1 204 No Content\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := newRawServer(t, func(c net.Conn) {
				if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, tt.answer)
				select {
				case <-release:
					if tt.reset {
						c.(*net.TCPConn).SetLinger(0)
						return
					}
					io.WriteString(c, tt.later)
				case <-time.After(2 * wait):
					return
				}
				// Hold the connection open: Wait must not need its end.
				io.Copy(io.Discard, c)
			})
			defer close(release)
			c := newClient(t, srv.url("/v1/responses"), nil)
			ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
			defer cancel()
			resp, err := c.Do(ctx, nil, nil, 0)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 64)
			for range tt.reads {
				if _, err := resp.Body.Read(buf); err != nil && err != io.EOF {
					t.Fatalf("Read before Wait: %v", err)
				}
			}
			done := make(chan struct{})
			go func() {
				resp.Body.(interface{ Wait() }).Wait()
				close(done)
			}()
			if tt.later != "" || tt.cancel || tt.reset {
				select {
				case <-done:
					t.Fatal("Wait returned before the upstream sent anything")
				case <-time.After(50 * time.Millisecond):
				}
				if tt.cancel {
					cancel()
				} else {
					release <- struct{}{}
				}
			}
			within(t, done, wait, "Wait to return")
			n, err := resp.Body.Read(buf)
			switch {
			case tt.fail:
				if err == nil || err == io.EOF {
					t.Errorf("Read after Wait: got %q, %v, want an error", buf[:n], err)
				}
			case string(buf[:n]) != tt.want || (tt.want == "" && err != io.EOF):
				t.Errorf("Read after Wait: got %q, %v, want %q", buf[:n], err, tt.want)
			}
		})
	}
}

// TestIdleConnTimeout: an unused pooled connection is closed once it has
// been idle for IdleConnTimeout, also after the pool was empty in between.
func TestIdleConnTimeout(t *testing.T) {
	closed := make(chan struct{}, 2)
	srv := newRawServer(t, func(c net.Conn) {
		serveOK(c)
		closed <- struct{}{}
	})
	c := newClient(t, srv.url("/v1/responses"), func(cfg *Config) { cfg.IdleConnTimeout = 50 * time.Millisecond })
	for i := range 2 {
		if status, body := get(t, c, "{}"); status != 200 || body != "ok" {
			t.Fatalf("request %d: got %d %q, want 200 %q", i, status, body, "ok")
		}
		within(t, closed, wait, "the idle connection to be closed")
	}
	if n := srv.accepts.Load(); n != 2 {
		t.Errorf("connections: got %d, want 2", n)
	}
}
