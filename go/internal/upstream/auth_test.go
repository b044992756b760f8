package upstream

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// TestDoAuthWireBytes: the per-request auth line of workload identity
// (issue 10) is sent exactly where Config.Auth would be, a GET carries no
// framing field, and a NoAuth client's Do sends no Authorization at all.
func TestDoAuthWireBytes(t *testing.T) {
	const line = "Authorization: bearer req.tok-en_1\r\n"
	tests := []struct {
		name   string
		method string
		auth   []byte // nil: Do
		want   string // after the Host line
	}{
		{name: "GET with DoAuth", method: "GET", auth: []byte(line), want: "Accept: application/json\r\n" + line + "\r\n"},
		{name: "POST without auth", method: "POST", want: "Accept: application/json\r\nContent-Length: 0\r\n\r\n"},
		{name: "default method with DoAuth", auth: []byte(line), want: "Accept: application/json\r\n" + line + "Content-Length: 0\r\n\r\n"},
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
			const target = "/token?api-version=2.0&audience=https%3A%2F%2Fx"
			c := newClient(t, srv.url(target), func(cfg *Config) {
				cfg.Auth, cfg.NoAuth, cfg.Method = nil, true, tc.method
			})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			fields := []httpsyntax.Field{{Name: "Accept", Value: "application/json"}}
			var resp *Response
			var err error
			if tc.auth != nil {
				resp, err = c.DoAuth(ctx, tc.auth, fields, nil, 0)
			} else {
				resp, err = c.Do(ctx, fields, nil, 0)
			}
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()
			method := tc.method
			if method == "" {
				method = "POST"
			}
			want := method + " " + target + " HTTP/1.1\r\nHost: " + srv.ln.Addr().String() + "\r\n" + tc.want
			if g := within(t, got, wait, "the request"); g != want {
				t.Errorf("wire bytes:\ngot  %q\nwant %q", g, want)
			}
		})
	}
}

func TestNewRejectsAuthConfig(t *testing.T) {
	u, _ := url.Parse("https://example.com/v1")
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "NoAuth with an auth line", cfg: Config{URL: u, Auth: testAuth, NoAuth: true}},
		{name: "PUT", cfg: Config{URL: u, Auth: testAuth, Method: "PUT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Errorf("got nil error, want one")
			}
		})
	}
}

// TestZeroBuffers: with ZeroBuffers, a secret sent inline in the body (the
// token exchange's JWT) is not left in the pooled head buffer; without it,
// it is, which is what the option is for.
func TestZeroBuffers(t *testing.T) {
	const secret = "eyJsecret.jwt-in-the-body.sig"
	var found atomic.Int32
	hook := func(b []byte) {
		if bytes.Contains(b, []byte(secret)) {
			found.Add(1)
		}
	}
	testOnlyReleased.Store(&hook)
	t.Cleanup(func() { testOnlyReleased.Store(nil) })
	srv := newRawServer(t, serveOK)
	for _, zero := range []bool{true, false} {
		found.Store(0)
		c := newClient(t, srv.url("/oauth/token"), func(cfg *Config) { cfg.ZeroBuffers = zero })
		body := `{"subject_token":"` + secret + `"}`
		resp, err := c.Do(context.Background(), nil, strings.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := found.Load() > 0; got == zero {
			t.Errorf("ZeroBuffers %v: got the secret in a released buffer: %v", zero, got)
		}
	}
}
