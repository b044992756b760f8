package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests here cover an https:// proxy: TLS to the proxy, CONNECT inside
// that session, then TLS to the upstream inside the tunnel. The proxy's
// certificate is checked against Config.RootCAs, the same pool as the
// upstream's (see tunnel in conn.go); there is no separate proxy trust.

// newProxyCert issues a server certificate for the given names from a CA of
// its own, so that a test trusts the proxy only by adding that CA.
func newProxyCert(t *testing.T, ips []net.IP, dnsNames []string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "upstream test proxy CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "upstream test proxy"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     dnsNames,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, ca
}

var loopback = []net.IP{net.IPv4(127, 0, 0, 1)}

// recordingUpstream is an HTTPS upstream that records the header of every
// request and counts new connections.
type recordingUpstream struct {
	srv   *httptest.Server
	roots *x509.CertPool
	conns atomic.Int32

	mu      sync.Mutex
	headers []http.Header
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		io.WriteString(w, `{"ok":true}`)
	}))
	u.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	u.roots = x509.NewCertPool()
	u.roots.AddCert(u.srv.Certificate())
	return u
}

// clientVia returns a client of u that goes through proxy and trusts u's
// certificate and, unless it is nil, the proxy's CA; mod adjusts the rest.
func (u *recordingUpstream) clientVia(t *testing.T, proxy *url.URL, ca *x509.Certificate, mod func(*Config)) *Client {
	t.Helper()
	roots := u.roots.Clone()
	if ca != nil {
		roots.AddCert(ca)
	}
	return newClient(t, u.srv.URL+"/v1/responses", func(cfg *Config) {
		cfg.RootCAs = roots
		cfg.Proxy = func(*url.URL) (*url.URL, error) { return proxy, nil }
		if mod != nil {
			mod(cfg)
		}
	})
}

func (u *recordingUpstream) addr() string { return u.srv.Listener.Addr().String() }

// checkHeaders fails unless every request carried our bearer and none
// carried anything meant for the proxy.
func (u *recordingUpstream) checkHeaders(t *testing.T, wantRequests int) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.headers) != wantRequests {
		t.Errorf("upstream requests: got %d, want %d", len(u.headers), wantRequests)
	}
	for i, h := range u.headers {
		if got, want := h.Get("Authorization"), "Bearer "+testKey; got != want {
			t.Errorf("upstream request %d: Authorization: got %q, want %q", i, got, want)
		}
		for k := range h {
			if strings.HasPrefix(k, "Proxy-") {
				t.Errorf("upstream request %d: got header %q, want no Proxy-* header", i, k)
			}
		}
	}
}

// tunnelRecord is what a TLS proxy could read on one connection, decrypted.
type tunnelRecord struct {
	connect *http.Request
	alpn    string
	head    []byte // the CONNECT request head as it arrived
	after   []byte // everything the client sent after the head
}

// tlsProxy is a loopback CONNECT proxy reached over TLS. It answers a
// CONNECT with refuse, or with 200 and a tunnel to the target when refuse
// is empty.
type tlsProxy struct {
	srv *rawServer

	mu       sync.Mutex
	connects int
	records  []tunnelRecord // one per connection, added when it ends
}

func newTLSProxy(t *testing.T, cert tls.Certificate, refuse string) *tlsProxy {
	t.Helper()
	p := &tlsProxy{}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	p.srv = newRawServer(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		tc.SetDeadline(time.Now().Add(wait))
		if err := tc.Handshake(); err != nil {
			return
		}
		var seen bytes.Buffer // everything the client sent, decrypted
		br := bufio.NewReader(io.TeeReader(tc, &seen))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		rec := tunnelRecord{connect: req, alpn: tc.ConnectionState().NegotiatedProtocol}
		headLen := seen.Len() - br.Buffered()
		p.mu.Lock()
		p.connects++
		p.mu.Unlock()
		defer func() {
			rec.head = bytes.Clone(seen.Bytes()[:headLen])
			rec.after = bytes.Clone(seen.Bytes()[headLen:])
			p.mu.Lock()
			p.records = append(p.records, rec)
			p.mu.Unlock()
		}()
		if refuse != "" {
			io.WriteString(tc, "HTTP/1.1 "+refuse+"\r\nContent-Length: 0\r\n\r\n")
			return
		}
		up, err := net.DialTimeout("tcp", req.RequestURI, wait)
		if err != nil {
			io.WriteString(tc, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		defer up.Close()
		tc.SetDeadline(time.Time{}) // the tunnel lives until the client closes it
		io.WriteString(tc, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() {
			io.Copy(tc, up)
			c.Close()
			close(done)
		}()
		io.Copy(up, br)
		up.Close()
		<-done
	})
	return p
}

func (p *tlsProxy) url(user *url.Userinfo) *url.URL {
	return &url.URL{Scheme: "https", Host: p.srv.ln.Addr().String(), User: user}
}

func (p *tlsProxy) connectCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connects
}

// finish closes c's pooled connections and the proxy, waits for every
// tunnel to end and returns what the proxy recorded.
func (p *tlsProxy) finish(t *testing.T, c *Client) []tunnelRecord {
	t.Helper()
	c.CloseIdleConnections()
	p.srv.ln.Close()
	done := make(chan struct{})
	go func() {
		p.srv.wg.Wait()
		close(done)
	}()
	within(t, done, wait, "the proxy's tunnels to end")
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records
}

// checkTLSRecords fails unless b is a whole sequence of TLS records (RFC
// 8446, 5.1) that starts with a handshake record and carries application
// data: what a proxy sees of a TLS session it does not terminate.
func checkTLSRecords(b []byte) error {
	if len(b) == 0 {
		return errors.New("no bytes")
	}
	if b[0] != 22 {
		return fmt.Errorf("first record type %d, want 22 (handshake)", b[0])
	}
	appData := false
	for off := 0; off < len(b); {
		if len(b)-off < 5 {
			return fmt.Errorf("truncated record header at offset %d", off)
		}
		typ, version, n := b[off], int(b[off+1])<<8|int(b[off+2]), int(b[off+3])<<8|int(b[off+4])
		switch {
		case typ < 20 || typ > 23:
			return fmt.Errorf("record type %d at offset %d is not TLS", typ, off)
		case version != 0x0301 && version != 0x0303:
			return fmt.Errorf("record version %#04x at offset %d is not TLS", version, off)
		case n > 1<<14+256:
			return fmt.Errorf("record length %d at offset %d is too long", n, off)
		case len(b)-off-5 < n:
			return fmt.Errorf("record at offset %d truncated", off)
		}
		appData = appData || typ == 23
		off += 5 + n
	}
	if !appData {
		return errors.New("no application data record")
	}
	return nil
}

// TestHTTPSProxyTunnel: through an https:// proxy the request works end to
// end over one CONNECT for the upstream's host:port. The CONNECT carries no
// Authorization, and Proxy-Authorization only from the proxy URL's user
// info; the proxy reads nothing after the CONNECT head but TLS records, so
// neither the key nor the body; the upstream sees no Proxy-* header.
func TestHTTPSProxyTunnel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		user          *url.Userinfo
		wantProxyAuth string
	}{
		{name: "no user info", user: nil, wantProxyAuth: ""},
		{
			name:          "user and password",
			user:          url.UserPassword("alice", "s3:cr@t"),
			wantProxyAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3:cr@t")),
		},
		{
			name:          "user only",
			user:          url.User("alice"),
			wantProxyAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:")),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newRecordingUpstream(t)
			cert, ca := newProxyCert(t, loopback, nil)
			p := newTLSProxy(t, cert, "")
			c := up.clientVia(t, p.url(tc.user), ca, nil)
			const body = `{"input":"tunnelled-body"}`
			if status, got := get(t, c, body); status != 200 || got != `{"ok":true}` {
				t.Errorf("got %d %q, want 200 %q", status, got, `{"ok":true}`)
			}
			records := p.finish(t, c)
			up.checkHeaders(t, 1)

			if len(records) != 1 {
				t.Fatalf("CONNECTs: got %d, want 1", len(records))
			}
			r := records[0]
			if r.connect.Method != http.MethodConnect || r.connect.RequestURI != up.addr() || r.connect.Host != up.addr() {
				t.Errorf("proxy request: got %s %q Host %q, want CONNECT %q Host %q",
					r.connect.Method, r.connect.RequestURI, r.connect.Host, up.addr(), up.addr())
			}
			if r.alpn != "http/1.1" {
				t.Errorf("ALPN with proxy: got %q, want %q", r.alpn, "http/1.1")
			}
			if got := r.connect.Header.Get("Proxy-Authorization"); got != tc.wantProxyAuth {
				t.Errorf("Proxy-Authorization: got %q, want %q", got, tc.wantProxyAuth)
			}
			if _, ok := r.connect.Header["Authorization"]; ok {
				t.Error("CONNECT carries an Authorization header")
			}
			if bytes.Contains(r.head, []byte(testKey)) {
				t.Error("CONNECT head contains the key")
			}
			if err := checkTLSRecords(r.after); err != nil {
				t.Errorf("tunnelled bytes are not TLS records: %v", err)
			}
			for _, s := range []string{testKey, string(testAuth), "Bearer", "tunnelled-body"} {
				if bytes.Contains(r.after, []byte(s)) {
					t.Errorf("proxy read %q inside the tunnel", s)
				}
			}
		})
	}
}

// TestHTTPSProxyFailures: a request through a proxy that cannot be used
// fails with an error naming the proxy step and holding no key bytes, and
// nothing reaches the upstream. The proxy's certificate is verified
// against Config.RootCAs and the proxy URL's host, and a failure there
// stops before any CONNECT, so the proxy learns neither the upstream nor
// the credentials; a non-2xx answer to the CONNECT is a refusal.
func TestHTTPSProxyFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		dnsNames     []string
		ips          []net.IP
		trustCA      bool
		refuse       string // the proxy's answer to CONNECT, if not 200
		wantErr      string
		wantConnects int
	}{
		{name: "unknown CA", ips: loopback, wantErr: "tls handshake with proxy"},
		{name: "wrong name", dnsNames: []string{"proxy.example"}, trustCA: true, wantErr: "tls handshake with proxy"},
		{name: "407", ips: loopback, trustCA: true, refuse: "407 Proxy Authentication Required", wantConnects: 1},
		{name: "403", ips: loopback, trustCA: true, refuse: "403 Forbidden", wantConnects: 1},
		{name: "502", ips: loopback, trustCA: true, refuse: "502 Bad Gateway", wantConnects: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.refuse != "" {
				tc.wantErr = "proxy refused CONNECT: " + tc.refuse
			}
			up := newRecordingUpstream(t)
			cert, ca := newProxyCert(t, tc.ips, tc.dnsNames)
			p := newTLSProxy(t, cert, tc.refuse)
			if !tc.trustCA {
				ca = nil
			}
			c := up.clientVia(t, p.url(url.UserPassword("alice", "s3cret")), ca, nil)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := c.Do(ctx, nil, strings.NewReader("{}"), 2)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Do: got %v, want an error containing %q", err, tc.wantErr)
			}
			for _, s := range []string{testKey, "Bearer", "s3cret"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q", err, s)
				}
			}
			if records := p.finish(t, c); len(records) != tc.wantConnects {
				t.Errorf("CONNECTs: got %d, want %d", len(records), tc.wantConnects)
			}
			if n := up.conns.Load(); n != 0 {
				t.Errorf("upstream connections: got %d, want 0", n)
			}
		})
	}
}

// TestProxyHangs: a proxy that stops answering is bounded by our timeouts,
// not by the caller's context: the CONNECT exchange by DialTimeout (for an
// http and an https proxy), the TLS handshake with an https proxy by
// TLSHandshakeTimeout.
func TestProxyHangs(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	cert, ca := newProxyCert(t, loopback, nil)
	tests := []struct {
		name    string
		scheme  string
		tls     bool // the proxy completes a TLS handshake first
		connect bool // the proxy reads the CONNECT, then hangs
		cancel  bool // the caller's context ends first, not our timeouts
		wantErr string
	}{
		{name: "http proxy, CONNECT unanswered", scheme: "http", connect: true, wantErr: "reading CONNECT response from proxy"},
		{name: "https proxy, CONNECT unanswered", scheme: "https", tls: true, connect: true, wantErr: "reading CONNECT response from proxy"},
		{name: "https proxy, TLS handshake unanswered", scheme: "https", wantErr: "tls handshake with proxy"},
		{name: "caller gives up during CONNECT", scheme: "http", connect: true, cancel: true, wantErr: "CONNECT exchange with proxy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newRecordingUpstream(t)
			gotConnect := make(chan struct{}, 1)
			psrv := newRawServer(t, func(c net.Conn) {
				c.SetDeadline(time.Now().Add(2 * wait))
				var rc net.Conn = c
				if tc.tls {
					sc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
					if err := sc.Handshake(); err != nil {
						return
					}
					rc = sc
				}
				if tc.connect {
					if req, err := http.ReadRequest(bufio.NewReader(rc)); err != nil || req.Method != http.MethodConnect {
						return
					}
					gotConnect <- struct{}{}
				}
				io.Copy(io.Discard, rc) // until the client gives up
			})
			c := up.clientVia(t, &url.URL{Scheme: tc.scheme, Host: psrv.ln.Addr().String()}, ca, func(cfg *Config) {
				cfg.DialTimeout, cfg.TLSHandshakeTimeout = timeout, timeout
				if tc.tls {
					// The handshake must succeed, also on a loaded
					// machine with -race: only the CONNECT may hang.
					cfg.TLSHandshakeTimeout = wait
				}
				if tc.cancel {
					cfg.DialTimeout, cfg.TLSHandshakeTimeout = wait, wait
				}
			})
			ctxTimeout, wantIs := wait, error(os.ErrDeadlineExceeded)
			if tc.cancel {
				ctxTimeout, wantIs = timeout, context.DeadlineExceeded
			}
			ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
			defer cancel()
			start := time.Now()
			_, err := c.Do(ctx, nil, strings.NewReader("{}"), 2)
			d := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, wantIs) {
				t.Errorf("Do: got %v, want %q and %v", err, tc.wantErr, wantIs)
			}
			if d > 2*time.Second {
				t.Errorf("Do took %v, want about %v", d, timeout)
			}
			if tc.connect {
				within(t, gotConnect, wait, "the proxy to read the CONNECT")
			}
			if n := up.conns.Load(); n != 0 {
				t.Errorf("upstream connections: got %d, want 0", n)
			}
		})
	}
}

// TestHTTPSProxyReuse: the connection through the tunnel is pooled, so two
// requests take one proxy connection and one CONNECT; once the pool is
// emptied the next request opens a second tunnel.
func TestHTTPSProxyReuse(t *testing.T) {
	t.Parallel()
	up := newRecordingUpstream(t)
	cert, ca := newProxyCert(t, loopback, nil)
	p := newTLSProxy(t, cert, "")
	c := up.clientVia(t, p.url(nil), ca, nil)
	for i := range 2 {
		if status, body := get(t, c, `{"i":1}`); status != 200 || body != `{"ok":true}` {
			t.Fatalf("request %d: got %d %q, want 200", i, status, body)
		}
	}
	if n := p.connectCount(); n != 1 {
		t.Errorf("CONNECTs for two requests: got %d, want 1", n)
	}
	if n := p.srv.accepts.Load(); n != 1 {
		t.Errorf("proxy connections for two requests: got %d, want 1", n)
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("upstream connections for two requests: got %d, want 1", n)
	}

	c.CloseIdleConnections()
	if status, _ := get(t, c, `{"i":1}`); status != 200 {
		t.Fatalf("request after CloseIdleConnections: got %d, want 200", status)
	}
	if n := p.connectCount(); n != 2 {
		t.Errorf("CONNECTs after the pool was emptied: got %d, want 2", n)
	}
	p.finish(t, c)
	up.checkHeaders(t, 3)
}
