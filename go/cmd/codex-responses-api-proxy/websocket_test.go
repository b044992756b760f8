package main_test

// WebSocket mode (issue 11), through the real binary: Codex's handshake to a
// fake upstream that speaks WebSocket (github.com/coder/websocket), plain
// and over TLS.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// codexWSHeader is what Codex 0.169 sends with its upgrade (NOTES.md), with
// an Authorization of its own that the proxy must replace, and hop-by-hop
// fields, which it must drop.
func codexWSHeader() http.Header {
	return http.Header{
		"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"},
		"Openai-Beta":              {"responses_websockets=2026-02-06"},
		"Originator":               {"codex_exec"},
		"Session-Id":               {"0199-session"},
		"X-Codex-Turn-Metadata":    {`{"request_kind":"prewarm"}`},
		"Authorization":            {"Bearer client-own-token"},
		"Keep-Alive":               {"timeout=5"},
		"Proxy-Authorization":      {"Basic cHJveHk6cHJveHk="},
	}
}

// wsDial opens a WebSocket to the proxy, its bytes recorded, with h as the
// handshake's extra fields.
func (p *proxyProc) wsDial(t *testing.T, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tr := &http.Transport{DialContext: p.dialTapped}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+p.addr+"/v1/responses", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, HTTPHeader: h,
	})
	if c != nil {
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// wsUpstream is a fake upstream in WebSocket mode: it reports each
// handshake it receives on seen and runs serve on the accepted socket.
func wsUpstream(t *testing.T, useTLS bool, seen chan<- seenRequest, serve func(ctx context.Context, c *websocket.Conn)) *fakeUpstream {
	return newUpstream(t, useTLS, func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen <- capture(r)
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx, cancel := context.WithTimeout(r.Context(), 3*ioTimeout)
		defer cancel()
		serve(ctx, c)
	})
}

func wsRead(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading a message: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type: got %v, want text", typ)
	}
	return string(data)
}

func wsWrite(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("writing a message: %v", err)
	}
}

// TestWebSocketRelay: Codex's handshake reaches the upstream with the key
// injected once, the client's Authorization replaced, Host rewritten,
// Codex's fields kept and hop-by-hop ones dropped; messages cross both ways,
// each delivered before the upstream sends the next (the upstream waits for
// the client's answer to each); and the client's close reaches the upstream.
func TestWebSocketRelay(t *testing.T) {
	t.Parallel()
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[useTLS], func(t *testing.T) {
			t.Parallel()
			seen := make(chan seenRequest, 1)
			closed := make(chan error, 1)
			up := wsUpstream(t, useTLS, seen, func(ctx context.Context, c *websocket.Conn) {
				for i := 0; ; i++ {
					typ, msg, err := c.Read(ctx)
					if err != nil {
						closed <- err
						return
					}
					// The answer to message i, sent only once it has arrived:
					// a proxy that held a message back would stall here.
					reply := fmt.Sprintf(`{"type":"response.output_text.delta","n":%d,"echo":%q}`, i, msg)
					if err := c.Write(ctx, typ, []byte(reply)); err != nil {
						closed <- err
						return
					}
				}
			})
			p := startProxy(t, options{up: up, secrets: []string{"client-own-token"}})
			c, resp, err := p.wsDial(t, codexWSHeader())
			if err != nil {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
				t.Errorf("handshake: got %d with extensions %q, want 101 declining deflate", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions"))
			}

			s := receive(t, seen)
			checkWSHandshake(t, s, p.key, up.host())

			for i, msg := range []string{`{"type":"response.create","generate":false}`, `{"type":"response.create","input":[]}`, strings.Repeat("x", 70000)} {
				wsWrite(t, c, msg)
				want := fmt.Sprintf(`{"type":"response.output_text.delta","n":%d,"echo":%q}`, i, msg)
				if got := wsRead(t, c); got != want {
					t.Fatalf("message %d: got %.80q, want %.80q", i, got, want)
				}
			}
			if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
				t.Errorf("closing: %v", err)
			}
			select {
			case err := <-closed:
				if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					t.Errorf("upstream saw the end as %v, want the client's normal closure", err)
				}
			case <-time.After(ioTimeout):
				t.Fatal("the client's close did not reach the upstream")
			}
			if !waitFor(ioTimeout, func() bool { return strings.Contains(p.stderr.String(), "GET /v1/responses 101 ") }) {
				t.Errorf("no access line for the WebSocket:\n%s", p.stderr.String())
			}
		})
	}
}

func checkWSHandshake(t *testing.T, s seenRequest, key, host string) {
	t.Helper()
	if s.method != http.MethodGet || s.requestURI != upstreamPath || s.host != host {
		t.Errorf("request: got %s %s Host %s, want GET %s Host %s", s.method, s.requestURI, s.host, upstreamPath, host)
	}
	if got := s.header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+key {
		t.Errorf("Authorization: got %d values, want exactly the proxy's key once", len(got))
	}
	for name, want := range codexWSHeader() {
		switch name {
		case "Authorization":
		case "Keep-Alive", "Proxy-Authorization":
			if got := s.header.Values(name); len(got) != 0 {
				t.Errorf("%s: got %q, want it dropped", name, got)
			}
		default:
			if got := s.header.Values(name); len(got) != 1 || got[0] != want[0] {
				t.Errorf("%s: got %q, want %q", name, got, want)
			}
		}
	}
	if got := s.header.Values("Upgrade"); len(got) != 1 || got[0] != "websocket" {
		t.Errorf("Upgrade: got %q, want websocket", got)
	}
	if got := s.header.Values("Connection"); len(got) != 1 || got[0] != "Upgrade" {
		t.Errorf("Connection: got %q, want Upgrade", got)
	}
	if s.header.Get("Sec-WebSocket-Key") == "" || s.header.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("Sec-WebSocket-Key %q, -Version %q: want the client's", s.header.Get("Sec-WebSocket-Key"), s.header.Get("Sec-WebSocket-Version"))
	}
}

// TestWebSocketUpstreamCloses: the upstream's close reaches the client, and
// the proxy logs one access line for the socket.
func TestWebSocketUpstreamCloses(t *testing.T) {
	t.Parallel()
	up := wsUpstream(t, false, nil, func(ctx context.Context, c *websocket.Conn) {
		c.Read(ctx)
		c.Close(websocket.StatusGoingAway, "bye")
	})
	p := startProxy(t, options{up: up})
	c, _, err := p.wsDial(t, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	wsWrite(t, c, `{"type":"response.create"}`)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read after the upstream's close: got %v, want status 1001", err)
	}
	line := func() string {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, "GET /v1/responses 101 ") {
				return l
			}
		}
		return ""
	}
	if !waitFor(ioTimeout, func() bool { return line() != "" }) {
		t.Fatalf("no access line for the WebSocket:\n%s", p.stderr.String())
	}
	if !strings.Contains(line(), "websocket_sent=") {
		t.Errorf("access line %q: want the bytes sent upstream", line())
	}
}

// wsHandshake is a raw, valid upgrade request; {extra} takes more fields.
const wsHandshake = "GET /v1/responses HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"

// TestWebSocketRefused: upgrades that are malformed, from a browser, or for a
// rebound Host get 403, and nothing reaches the upstream.
func TestWebSocketRefused(t *testing.T) {
	t.Parallel()
	valid := func(extra string) string { return strings.ReplaceAll(wsHandshake, "{extra}", extra) }
	without := func(field string) string {
		var lines []string
		for _, l := range strings.Split(valid(""), "\r\n") {
			if !strings.HasPrefix(l, field+":") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\r\n")
	}
	replace := func(old, new string) string { return strings.Replace(valid(""), old, new, 1) }
	tests := []struct {
		name string
		raw  string
	}{
		{name: "Origin", raw: valid("Origin: https://attacker.example\r\n")},
		{name: "Origin of the proxy itself", raw: valid("Origin: http://{addr}\r\n")},
		{name: "Sec-Fetch-Site cross-site", raw: valid("Sec-Fetch-Site: cross-site\r\n")},
		{name: "rebinding Host", raw: replace("Host: {addr}", "Host: attacker.example:{port}")},
		{name: "no key", raw: without("Sec-WebSocket-Key")},
		{name: "key of 15 bytes", raw: replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ")},
		{name: "key not base64", raw: replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ!==")},
		{name: "two keys", raw: valid("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")},
		{name: "version 8", raw: replace("Version: 13", "Version: 8")},
		{name: "no version", raw: without("Sec-WebSocket-Version")},
		{name: "no Upgrade", raw: without("Upgrade")},
		{name: "Upgrade h2c", raw: replace("Upgrade: websocket", "Upgrade: h2c")},
		{name: "Connection without upgrade", raw: replace("Connection: Upgrade", "Connection: keep-alive")},
		{name: "a body", raw: valid("Content-Length: 5\r\n") + "hello"},
		{name: "a chunked body", raw: valid("Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n"},
		{name: "HTTP/1.0", raw: replace("HTTP/1.1", "HTTP/1.0")},
		{name: "query", raw: replace("/v1/responses", "/v1/responses?x=1")},
		{name: "other path", raw: replace("/v1/responses", "/v1/realtime")},
		{name: "PUT", raw: replace("GET", "PUT")},
	}
	up := countingUpstream(t)
	p := startProxy(t, options{up: up})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			resp, _ := p.raw(strings.ReplaceAll(tt.raw, "{port}", fmt.Sprint(p.port)))
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status: got %d, want 403", resp.StatusCode)
			}
			if n := up.hits.Load() - before; n != 0 {
				t.Errorf("requests forwarded upstream: got %d, want 0", n)
			}
		})
	}
	// The same handshake, well-formed, is forwarded: the refusals above are
	// each for the one thing they change.
	before := up.hits.Load()
	if resp, _ := p.raw(valid("")); resp.StatusCode != http.StatusOK {
		t.Errorf("valid handshake to a plain upstream: got %d, want its 200 mirrored", resp.StatusCode)
	}
	up.checkHits(t, before, true)
}

// TestWebSocketUpstreamAnswers: an upstream's refusal is mirrored with its
// body and the connection closed, and a 101 that does not complete the
// handshake (wrong accept value, no Upgrade) is a 502.
func TestWebSocketUpstreamAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		switchHead string // if set, a raw 101 head the upstream sends instead
		want       int
	}{
		{name: "401 mirrored", status: http.StatusUnauthorized, body: `{"error":{"message":"bad key"}}`, want: http.StatusUnauthorized},
		{name: "426 mirrored", status: http.StatusUpgradeRequired, body: `{"error":{"message":"websockets off"}}`, want: http.StatusUpgradeRequired},
		{name: "wrong accept", switchHead: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: c2VjcmV0LWJ1dC13cm9uZy12YWx1ZT0=\r\n\r\n", want: http.StatusBadGateway},
		{name: "no accept", switchHead: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", want: http.StatusBadGateway},
		// The right accept value for the key of wsHandshake (RFC 6455, 1.3).
		{name: "no Upgrade", switchHead: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", want: http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				if tt.switchHead == "" {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
					return
				}
				c, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer c.Close()
				brw.WriteString(tt.switchHead)
				brw.Flush()
				c.SetReadDeadline(time.Now().Add(ioTimeout))
				io.Copy(io.Discard, c) // until the proxy closes
			})
			p := startProxy(t, options{up: up})
			resp, body := p.raw(strings.ReplaceAll(wsHandshake, "{extra}", ""))
			if resp.StatusCode != tt.want {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body: got %q, want %q", body, tt.body)
			}
			if !resp.Close {
				t.Error("the connection stays open after a refused upgrade; want Connection: close")
			}
		})
	}
}

// TestWebSocketDump: with --dump-dir, the deflate offer is dropped, and the
// handshake and every message, both ways and in order, are dumped, text as
// JSON when it parses; the key is in no dump (the harness checks).
func TestWebSocketDump(t *testing.T) {
	t.Parallel()
	seen := make(chan seenRequest, 1)
	up := wsUpstream(t, false, seen, func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil || c.Write(ctx, typ, append([]byte(`{"echo":`), append(msg, '}')...)) != nil {
				return
			}
		}
	})
	dir := filepath.Join(t.TempDir(), "dumps")
	p := startProxy(t, options{up: up, dumpDir: dir, secrets: []string{"client-own-token"}})
	c, _, err := p.wsDial(t, codexWSHeader())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if s := receive(t, seen); s.header.Get("Sec-WebSocket-Extensions") != "" {
		t.Errorf("upstream got the deflate offer %q while dumping", s.header.Get("Sec-WebSocket-Extensions"))
	}
	big := `"` + strings.Repeat("y", 70000) + `"`
	for _, msg := range []string{`{"type":"response.create"}`, big} {
		wsWrite(t, c, msg)
		if got := wsRead(t, c); got != `{"echo":`+msg+`}` {
			t.Fatalf("echo: got %.60q", got)
		}
	}
	c.Close(websocket.StatusNormalClosure, "done")

	var files map[string]dumpFile
	if !waitFor(ioTimeout, func() bool {
		files = map[string]dumpFile{}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if m := dumpName.FindStringSubmatch(e.Name()); m != nil {
				data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				var f dumpFile
				if json.Unmarshal(data, &f) == nil {
					files[m[2]] = f
				}
			}
		}
		return len(files) == 2
	}) {
		t.Fatalf("dump files: got %d, want a request and a response", len(files))
	}
	if req := files["request"]; req.Method != http.MethodGet || !hasHeader(req.Headers, "Openai-Beta", "responses_websockets=2026-02-06") {
		t.Errorf("request dump: got %s with %v, want GET with Codex's headers", req.Method, req.Headers)
	}
	res := files["response"]
	var body struct {
		Messages []struct {
			From, Type string
			Data       json.RawMessage
		} `json:"websocket_messages"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil || res.Status != http.StatusSwitchingProtocols {
		t.Fatalf("response dump: status %d, body %.200s: %v", res.Status, res.Body, err)
	}
	want := []string{
		`client text {"type":"response.create"}`,
		`upstream text {"echo":{"type":"response.create"}}`,
		`client text ` + big,
		`upstream text {"echo":` + big + `}`,
		`client close`,
		`upstream close`,
	}
	var got []string
	for _, m := range body.Messages {
		s := m.From + " " + m.Type
		if m.Type == "text" {
			var compact bytes.Buffer
			json.Compact(&compact, m.Data) // the dump file is indented
			s += " " + compact.String()
		}
		got = append(got, s)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("dumped messages:\ngot  %.300q\nwant %.300q", got, want)
	}
}
