package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// newTLSUpstream starts an HTTPS server that offers h2 as well, checks the
// key and protocol of every request, and counts new connections.
func newTLSUpstream(t *testing.T) (srv *httptest.Server, roots *x509.CertPool, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got, want := r.Header.Get("Authorization"), "Bearer "+testKey; got != want {
			t.Errorf("Authorization: got %q, want %q", got, want)
		}
		if got := r.TLS.NegotiatedProtocol; got != "http/1.1" {
			t.Errorf("ALPN: got %q, want %q", got, "http/1.1")
		}
		if r.ProtoMajor != 1 {
			t.Errorf("protocol: got %q, want HTTP/1.x", r.Proto)
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}} // like api.openai.com
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots = x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv, roots, conns
}

func TestTLSKeepAliveHTTP1Only(t *testing.T) {
	srv, roots, conns := newTLSUpstream(t)
	// The server does speak h2 to a client that offers it.
	probe, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "example.com", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := probe.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Fatalf("probe ALPN: got %q, want %q", got, "h2")
	}
	probe.Close()
	conns.Store(0)
	c := newClient(t, srv.URL+"/v1/responses", func(cfg *Config) { cfg.RootCAs = roots })
	for i := range 5 {
		if status, body := get(t, c, `{"i":1}`); status != 200 || body != `{"ok":true}` {
			t.Fatalf("request %d: got %d %q, want 200", i, status, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("connections: got %d, want 1", n)
	}
}

func TestTLSUnknownAuthority(t *testing.T) {
	srv, _, _ := newTLSUpstream(t)
	c := newClient(t, srv.URL+"/v1/responses", func(cfg *Config) { cfg.RootCAs = x509.NewCertPool() })
	_, err := c.Do(context.Background(), nil, nil, 0)
	if err == nil || !strings.Contains(err.Error(), "tls handshake with upstream") {
		t.Errorf("Do: got %v, want a tls handshake error", err)
	}
}

// connectProxy is a loopback CONNECT proxy that records what it saw.
type connectProxy struct {
	mu        sync.Mutex
	target    string // the CONNECT request target
	proxyAuth string
	tunnelled bytes.Buffer // client-to-upstream bytes inside the tunnel
}

func newConnectProxy(t *testing.T) (*connectProxy, *rawServer) {
	p := &connectProxy{}
	srv := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			return
		}
		p.mu.Lock()
		p.target, p.proxyAuth = req.RequestURI, req.Header.Get("Proxy-Authorization")
		p.mu.Unlock()
		up, err := net.Dial("tcp", req.RequestURI)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		defer up.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() {
			io.Copy(c, up)
			c.Close()
			close(done)
		}()
		var rec bytes.Buffer
		io.Copy(io.MultiWriter(up, &rec), br)
		up.Close()
		<-done
		p.mu.Lock()
		p.tunnelled.Write(rec.Bytes())
		p.mu.Unlock()
	})
	return p, srv
}

func TestConnectProxy(t *testing.T) {
	up, roots, _ := newTLSUpstream(t)
	p, psrv := newConnectProxy(t)
	proxyURL := &url.URL{Scheme: "http", Host: psrv.ln.Addr().String(), User: url.UserPassword("alice", "s3cret")}
	c := newClient(t, up.URL+"/v1/responses", func(cfg *Config) {
		cfg.RootCAs = roots
		cfg.Proxy = func(*url.URL) (*url.URL, error) { return proxyURL, nil }
	})
	for range 3 {
		if status, _ := get(t, c, `{"stream":true}`); status != 200 {
			t.Fatalf("status: got %d, want 200", status)
		}
	}
	c.CloseIdleConnections()
	psrv.ln.Close()
	psrv.wg.Wait() // the proxy has recorded everything

	p.mu.Lock()
	defer p.mu.Unlock()
	if want := up.Listener.Addr().String(); p.target != want {
		t.Errorf("CONNECT target: got %q, want %q", p.target, want)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret")); p.proxyAuth != want {
		t.Errorf("Proxy-Authorization: got %q, want %q", p.proxyAuth, want)
	}
	if p.tunnelled.Len() == 0 {
		t.Fatal("nothing went through the tunnel")
	}
	for _, s := range []string{testKey, "Authorization", `"stream"`} {
		if bytes.Contains(p.tunnelled.Bytes(), []byte(s)) {
			t.Errorf("proxy saw plaintext %q inside the tunnel", s)
		}
	}
}

func TestProxyRefused(t *testing.T) {
	up, roots, _ := newTLSUpstream(t)
	psrv := newRawServer(t, func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
	})
	c := newClient(t, up.URL+"/v1/responses", func(cfg *Config) {
		cfg.RootCAs = roots
		cfg.Proxy = func(*url.URL) (*url.URL, error) { return url.Parse("http://" + psrv.ln.Addr().String()) }
	})
	_, err := c.Do(context.Background(), nil, nil, 0)
	if err == nil || !strings.Contains(err.Error(), "proxy refused CONNECT: 407") {
		t.Errorf("Do: got %v, want a refused CONNECT", err)
	}
}

// TestHTTPUpstreamIgnoresProxy: the key must never cross a proxy in clear.
func TestHTTPUpstreamIgnoresProxy(t *testing.T) {
	_, psrv := newConnectProxy(t)
	srv := newRawServer(t, serveOK)
	c := newClient(t, srv.url("/v1/responses"), func(cfg *Config) {
		cfg.Proxy = func(*url.URL) (*url.URL, error) {
			t.Error("proxy consulted for an http upstream")
			return url.Parse("http://" + psrv.ln.Addr().String())
		}
	})
	if status, _ := get(t, c, "{}"); status != 200 {
		t.Errorf("status: got %d, want 200", status)
	}
	if n := psrv.accepts.Load(); n != 0 {
		t.Errorf("proxy connections: got %d, want 0", n)
	}
}

// TestKeyNeverBuffered sends many requests over plain TCP and TLS, with
// both framings, and checks every buffer of ours as it is released and the
// read buffers the pooled connections keep: the key is in none of them.
// (crypto/tls's record scratch buffers sit in a package-private pool; they
// hold only ciphertext because records are sealed in place, see the package
// comment. The process-wide memory census of issue 4 covers them.)
// TestTLS12Only: against an upstream that speaks TLS 1.3, the client still
// negotiates TLS 1.2 with an AEAD suite, the record layer that seals the key
// from its locked slice without copying it (see the package comment).
func TestTLS12Only(t *testing.T) {
	srv, roots, _ := newTLSUpstream(t)
	probe, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if v := probe.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("probe: got %s, want the upstream to offer TLS 1.3", tls.VersionName(v))
	}
	probe.Close()
	c := newClient(t, srv.URL+"/v1/responses", func(cfg *Config) { cfg.RootCAs = roots })
	pc, err := c.dial(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	st := pc.nc.(*tls.Conn).ConnectionState()
	if st.Version != tls.VersionTLS12 {
		t.Errorf("version: got %s, want TLS 1.2", tls.VersionName(st.Version))
	}
	if name := tls.CipherSuiteName(st.CipherSuite); !strings.Contains(name, "_GCM_") && !strings.Contains(name, "CHACHA20_POLY1305") {
		t.Errorf("cipher suite: got %s, want an AEAD suite", name)
	}
}

func TestKeyNeverBuffered(t *testing.T) {
	var scanned, leaks atomic.Int32
	hook := func(b []byte) {
		scanned.Add(1)
		if bytes.Contains(b, []byte(testKey)) {
			leaks.Add(1)
		}
	}
	testOnlyReleased.Store(&hook)
	t.Cleanup(func() { testOnlyReleased.Store(nil) })

	tlsSrv, roots, _ := newTLSUpstream(t)
	plainSrv := newRawServer(t, serveOK)
	clients := map[string]*Client{
		"plain": newClient(t, plainSrv.url("/v1/responses"), nil),
		"tls":   newClient(t, tlsSrv.URL+"/v1/responses", func(cfg *Config) { cfg.RootCAs = roots }),
	}
	body := strings.Repeat(`{"input":"hello"}`, 100)
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			for i := range 100 {
				contentLength := int64(len(body))
				if i%2 == 1 {
					contentLength = -1
				}
				resp, err := c.Do(context.Background(), []httpsyntax.Field{{Name: "X-I", Value: "1"}}, strings.NewReader(body), contentLength)
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.idle) == 0 {
				t.Fatal("no pooled connection to inspect")
			}
			for _, pc := range c.idle {
				if bytes.Contains(unexportedBytes(t, pc.br, "buf"), []byte(testKey)) {
					t.Error("key found in a pooled connection's read buffer")
				}
			}
		})
	}
	if scanned.Load() < 200 {
		t.Errorf("buffers scanned: got %d, want at least 200", scanned.Load())
	}
	if n := leaks.Load(); n != 0 {
		t.Errorf("pooled buffers holding the key: got %d, want 0", n)
	}
}

// unexportedBytes returns the full capacity of a []byte field of *v.
func unexportedBytes(t *testing.T, v any, field string) []byte {
	t.Helper()
	f := reflect.ValueOf(v).Elem().FieldByName(field)
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Uint8 {
		t.Fatalf("%T has no []byte field %q any more: update the test", v, field)
	}
	b := f.Bytes()
	return b[:cap(b)]
}
