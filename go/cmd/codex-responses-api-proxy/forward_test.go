package main_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// seenRequest is what a fake upstream received.
type seenRequest struct {
	method, requestURI, host string
	header                   http.Header
	contentLength            int64
	body                     []byte
	bodyErr                  error
}

func capture(r *http.Request) seenRequest {
	body, err := io.ReadAll(r.Body)
	return seenRequest{
		method: r.Method, requestURI: r.RequestURI, host: r.Host,
		header: r.Header.Clone(), contentLength: r.ContentLength,
		body: body, bodyErr: err,
	}
}

// receive takes the one request a fake upstream saw, bounded in time.
func receive(t *testing.T, seen <-chan seenRequest) seenRequest {
	t.Helper()
	select {
	case s := <-seen:
		return s
	case <-time.After(ioTimeout):
		t.Fatal("nothing reached the upstream")
		return seenRequest{}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "https"} {
		for _, framing := range []string{"content-length", "chunked"} {
			t.Run(scheme+" "+framing, func(t *testing.T) {
				t.Parallel()
				reqBody := randomBytes(t, 200<<10)
				respBody := randomBytes(t, 100<<10)
				seen := make(chan seenRequest, 1)
				up := newUpstream(t, scheme == "https", func(w http.ResponseWriter, r *http.Request) {
					seen <- capture(r)
					w.Header().Set("Content-Type", "application/octet-stream")
					w.Header().Set("X-Request-Id", "req_e2e")
					w.Header()["X-Upstream-Multi"] = []string{"one", "two"}
					w.WriteHeader(http.StatusCreated)
					w.Write(respBody)
				})
				p := startProxy(t, options{up: up})

				req, err := http.NewRequest(http.MethodPost, p.url("/v1/responses"), bytes.NewReader(reqBody))
				if err != nil {
					t.Fatal(err)
				}
				if framing == "chunked" {
					req.Body = io.NopCloser(bytes.NewReader(reqBody))
					req.ContentLength = -1
				}
				endToEnd := http.Header{
					"Content-Type": {"application/json"},
					"Accept":       {"text/event-stream"},
					"User-Agent":   {"e2e-test/1.0"},
					"Openai-Beta":  {"responses=v1"},
					"X-Multi":      {"first", "second"},
					"X-Empty":      {""},
				}
				for k, v := range endToEnd {
					req.Header[k] = v
				}
				resp, err := p.client().Do(req)
				if err != nil {
					t.Fatalf("POST: %v", err)
				}
				defer resp.Body.Close()
				gotBody, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("reading response: %v", err)
				}

				s := receive(t, seen)
				if s.method != http.MethodPost {
					t.Errorf("upstream method: got %q, want %q", s.method, http.MethodPost)
				}
				if s.requestURI != upstreamPath {
					t.Errorf("upstream request target: got %q, want %q", s.requestURI, upstreamPath)
				}
				if s.host != up.host() {
					t.Errorf("upstream Host: got %q, want %q", s.host, up.host())
				}
				if got, want := s.header["Authorization"], []string{"Bearer " + p.key}; !slices.Equal(got, want) {
					t.Errorf("upstream Authorization: got %d values, want exactly one with the key", len(got))
				}
				for k, want := range endToEnd {
					if got := s.header[k]; !slices.Equal(got, want) {
						t.Errorf("upstream %s: got %q, want %q", k, got, want)
					}
				}
				if s.bodyErr != nil {
					t.Errorf("upstream body: %v", s.bodyErr)
				}
				if !bytes.Equal(s.body, reqBody) {
					t.Errorf("upstream body: got %d bytes, want the %d bytes sent, identical", len(s.body), len(reqBody))
				}
				if framing == "content-length" && s.contentLength != int64(len(reqBody)) {
					t.Errorf("upstream Content-Length: got %d, want %d", s.contentLength, len(reqBody))
				}

				if resp.StatusCode != http.StatusCreated {
					t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusCreated)
				}
				if got := resp.Header.Get("X-Request-Id"); got != "req_e2e" {
					t.Errorf("X-Request-Id: got %q, want %q", got, "req_e2e")
				}
				if got, want := resp.Header["X-Upstream-Multi"], []string{"one", "two"}; !slices.Equal(got, want) {
					t.Errorf("X-Upstream-Multi: got %q, want %q", got, want)
				}
				if !bytes.Equal(gotBody, respBody) {
					t.Errorf("response body: got %d bytes, want the upstream's %d bytes, identical", len(gotBody), len(respBody))
				}
				// The handler logs once it has returned, after the client has the body.
				logged := waitFor(exitTimeout, func() bool { return hasAccessLine(p.stderr.String(), "/v1/responses", "201", "req_e2e") })
				if !logged {
					t.Errorf("stderr: got %q, want an access line with the path, status 201 and the upstream request id", p.stderr.String())
				}
			})
		}
	}
}

// TestStreamingPerEvent proves that each event reaches the client while the
// upstream is still waiting to send the next one: the upstream sends an
// event, then blocks until the test has read that event through the proxy.
func TestStreamingPerEvent(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			const events = 5
			ack := make(chan int)
			upErr := make(chan error, 1)
			up := newUpstream(t, scheme == "https", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				for i := range events {
					sendEvent(w, "response.output_text.delta", fmt.Sprintf(`{"delta":"%d"}`, i))
					select {
					case <-ack:
					case <-time.After(exitTimeout):
						upErr <- fmt.Errorf("event %d did not reach the client before the upstream gave up waiting", i)
						return
					case <-r.Context().Done():
						upErr <- fmt.Errorf("request cancelled after event %d", i)
						return
					}
				}
				upErr <- nil
			})
			p := startProxy(t, options{up: up})
			resp, err := p.client().Post(p.url("/v1/responses"), "application/json", strings.NewReader(`{"stream":true}`))
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for i := range events {
				ev, err := readEventTimeout(br, exitTimeout+time.Second)
				if err != nil {
					t.Fatalf("event %d: %v (upstream: %v)", i, err, <-upErr)
				}
				if want := fmt.Sprintf(`{"delta":"%d"}`, i); ev.data != want {
					t.Fatalf("event %d: got %q, want %q", i, ev.data, want)
				}
				select {
				case ack <- i:
				case err := <-upErr:
					t.Fatalf("upstream: %v", err)
				}
			}
			if err := <-upErr; err != nil {
				t.Fatalf("upstream: %v", err)
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the last event: got %q, %v; want a clean end", rest, err)
			}
		})
	}
}

func TestClientHeadersFiltered(t *testing.T) {
	t.Parallel()
	seen := make(chan seenRequest, 1)
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		seen <- capture(r)
		w.WriteHeader(http.StatusOK)
	})
	p := startProxy(t, options{up: up})

	// Names the upstream must never see from the client, whatever Connection says.
	dropped := []string{"Proxy-Authorization", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Upgrade", "X-Hop", "Cookie2"}
	tests := []struct {
		name    string
		headers string
	}{
		{name: "client Authorization replaced", headers: "Authorization: Bearer client-token\r\n"},
		{name: "two client Authorization fields", headers: "Authorization: Bearer one\r\nAuthorization: Bearer two\r\n"},
		{name: "lowercase authorization", headers: "authorization: Basic Zm9vOmJhcg==\r\n"},
		{name: "Connection names Authorization", headers: "Connection: Authorization\r\nAuthorization: Bearer client-token\r\n"},
		{name: "Connection names Authorization alone", headers: "Connection: Authorization\r\n"},
		{name: "Connection close and authorization", headers: "Connection: close, authorization\r\n"},
		{name: "Connection lists authorization twice", headers: "Connection: authorization\r\nConnection: AUTHORIZATION, keep-alive\r\n"},
		{name: "Proxy-Authorization", headers: "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n"},
		{name: "hop-by-hop headers", headers: "Connection: keep-alive, X-Hop, Cookie2\r\nX-Hop: 1\r\nCookie2: c\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Trailer\r\nUpgrade: websocket\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"m"}`
			resp, _ := p.raw("POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nX-End-To-End: kept\r\n" + tt.headers +
				fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
			}
			s := receive(t, seen)
			if got := s.header["Authorization"]; !slices.Equal(got, []string{"Bearer " + p.key}) {
				t.Errorf("upstream Authorization: got %d values, want exactly one with the key", len(got))
			}
			for _, name := range dropped {
				if v, ok := s.header[name]; ok {
					t.Errorf("upstream got %s: %q", name, v)
				}
			}
			for _, v := range s.header["Connection"] {
				if lower := strings.ToLower(v); strings.Contains(lower, "authorization") || strings.Contains(lower, "x-hop") {
					t.Errorf("upstream got the client's Connection: %q", v)
				}
			}
			if got := s.header.Get("X-End-To-End"); got != "kept" {
				t.Errorf("upstream X-End-To-End: got %q, want %q", got, "kept")
			}
			if string(s.body) != body {
				t.Errorf("upstream body: got %q, want %q", s.body, body)
			}
		})
	}
}

// TestUpstreamHeadersFiltered has the upstream write its response head raw,
// so the hop-by-hop and CORS fields surely reach the proxy.
func TestUpstreamHeadersFiltered(t *testing.T) {
	t.Parallel()
	const head = "HTTP/1.1 200 OK\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: 2\r\n" +
		"Connection: X-Up-Hop\r\n" +
		"X-Up-Hop: 1\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Proxy-Authenticate: Basic realm=\"x\"\r\n" +
		"Access-Control-Allow-Origin: *\r\n" +
		"Access-Control-Allow-Credentials: true\r\n" +
		"Access-Control-Allow-Headers: *\r\n" +
		"Access-Control-Allow-Methods: POST\r\n" +
		"Access-Control-Expose-Headers: X-Visible\r\n" +
		"Access-Control-Max-Age: 600\r\n" +
		"X-Visible: yes\r\n\r\n{}"
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		bw.WriteString(head)
		bw.Flush()
	})
	p := startProxy(t, options{up: up})
	resp, body := p.post(nil, []byte(`{}`))
	if resp.StatusCode != http.StatusOK || string(body) != "{}" {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "{}")
	}
	for name, v := range resp.Header {
		if strings.HasPrefix(name, "Access-Control-") || name == "X-Up-Hop" || name == "Proxy-Authenticate" || name == "Keep-Alive" {
			t.Errorf("client got %s: %q", name, v)
		}
	}
	if got := resp.Header.Get("X-Visible"); got != "yes" {
		t.Errorf("X-Visible: got %q, want %q", got, "yes")
	}
}

// TestResponsePassthrough: status, redirects (not followed) and encoded
// bodies reach the client as the upstream sent them.
func TestResponsePassthrough(t *testing.T) {
	t.Parallel()
	gzipped := []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   []byte
	}{
		{name: "redirect not followed", status: http.StatusTemporaryRedirect, header: http.Header{"Location": {"http://127.0.0.1:1/elsewhere"}}, body: []byte("moved")},
		{name: "content encoding untouched", status: http.StatusOK, header: http.Header{"Content-Encoding": {"gzip"}, "Content-Type": {"application/json"}}, body: gzipped},
		{name: "rate limited", status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"7"}, "Content-Type": {"application/json"}}, body: []byte(`{"error":{"message":"slow down"}}`)},
		{name: "server error", status: http.StatusInternalServerError, header: http.Header{"Content-Type": {"application/json"}}, body: []byte(`{"error":{"message":"boom"}}`)},
		{name: "no content", status: http.StatusNoContent, header: http.Header{"X-Thing": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
				w.Write(tt.body)
			})
			p := startProxy(t, options{up: up})
			resp, body := p.post(nil, []byte(`{}`))
			if resp.StatusCode != tt.status {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
			for k, v := range tt.header {
				if got := resp.Header[k]; !slices.Equal(got, v) {
					t.Errorf("%s: got %q, want %q", k, got, v)
				}
			}
			if !bytes.Equal(body, tt.body) {
				t.Errorf("body: got %q, want %q", body, tt.body)
			}
		})
	}
}

func TestDeadUpstream(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String() + "/v1/responses"
	ln.Close()
	p := startProxy(t, options{upstreamURL: deadURL})
	for i := range 3 {
		resp, body := p.post(http.Header{"Content-Type": {"application/json"}}, []byte(`{"model":"m"}`))
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("request %d: status: got %d, want %d", i, resp.StatusCode, http.StatusBadGateway)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type: got %q, want application/json", ct)
		}
		if !json.Valid(body) || len(body) > 200 {
			t.Errorf("body: got %q, want short JSON", body)
		}
	}
	if resp, _ := p.raw("GET /v1/responses HTTP/1.1\r\nHost: {addr}\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET after 502s: got %d, want %d", resp.StatusCode, http.StatusForbidden)
	}
	if p.exited(0) {
		t.Errorf("proxy exited after a dead upstream; stderr:\n%s", p.stderr.String())
	}
}

// TestUpstreamFailsMidStream: a truncated upstream answer must reach the
// client as an aborted connection, never as a clean end.
func TestUpstreamFailsMidStream(t *testing.T) {
	t.Parallel()
	const firstEvent = "event: one\ndata: {}\n\n"
	tests := []struct {
		name string
		head string
	}{
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n", len(firstEvent), firstEvent)},
		{name: "content-length", head: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"partial\":"},
		{name: "close-delimited", head: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + firstEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				c, bw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				bw.WriteString(tt.head)
				bw.Flush()
				time.Sleep(100 * time.Millisecond)
				// An RST rather than a FIN: the upstream connection breaks.
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Close()
			})
			p := startProxy(t, options{up: up})
			resp, err := p.client().Post(p.url("/v1/responses"), "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			defer resp.Body.Close()
			_, err = io.ReadAll(resp.Body)
			if err == nil {
				t.Fatal("client read a clean end of a truncated stream, want an error")
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "EOF") {
				t.Errorf("got %v, want an aborted connection", err)
			}
			if resp, _ := p.raw("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("after the failure: got %d, want %d", resp.StatusCode, http.StatusForbidden)
			}
		})
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			cancelled := make(chan time.Duration, 1)
			up := newUpstream(t, scheme == "https", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				sendEvent(w, "response.created", "{}")
				start := time.Now()
				select {
				case <-r.Context().Done():
					cancelled <- time.Since(start)
				case <-time.After(exitTimeout):
				}
			})
			p := startProxy(t, options{up: up})
			c := p.dial()
			req := "POST /v1/responses HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
			if _, err := io.WriteString(c, strings.ReplaceAll(req, "{addr}", p.addr)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			if _, err := readEventTimeout(bufio.NewReader(resp.Body), ioTimeout); err != nil {
				t.Fatalf("first event: %v", err)
			}
			c.Close()
			select {
			case d := <-cancelled:
				t.Logf("upstream request cancelled %v after the first event", d)
			case <-time.After(2 * time.Second):
				t.Fatal("upstream request still running 2 s after the client left")
			}
		})
	}
}

// hasAccessLine reports whether some line of log holds all of parts.
func hasAccessLine(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(line, part)
		}
		if all {
			return true
		}
	}
	return false
}
