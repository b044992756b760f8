package main_test

// End-to-end harness: every test here starts the real binary, built once by
// TestMain, pipes a fresh random key to it on stdin (never argv, never the
// environment), finds its port through --server-info, and talks to it over
// loopback only. Every proxy is stopped by its PID when its test ends, and
// then the harness checks that the key appears in none of the proxy's
// stdout, stderr, server-info file and dump files, nor in any byte the test
// received from the proxy.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binPath is the proxy binary built by TestMain, in a directory every user
// can read and search (tests run it as another user too).
var binPath string

// Bounds of every wait in this package.
const (
	startTimeout = 10 * time.Second // the codex GitHub Action waits as long
	exitTimeout  = 5 * time.Second
	ioTimeout    = 10 * time.Second
)

// noMemfdSecretEnv, set to the proxy's path, makes the test binary exec the
// proxy with memfd_secret(2) unavailable (see execWithoutMemfdSecret).
const noMemfdSecretEnv = "E2E_EXEC_WITHOUT_MEMFD_SECRET="

func TestMain(m *testing.M) {
	if bin, ok := os.LookupEnv(strings.TrimSuffix(noMemfdSecretEnv, "=")); ok {
		execWithoutMemfdSecret(bin)
	}
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// proxyBinaryEnv, if set, names a proxy binary to test instead of building
// one: scripts/platforms.sh points it at the release binary under wine, where
// the Windows test binary has no go tool to build with.
const proxyBinaryEnv = "E2E_PROXY_BINARY"

func buildAndRun(m *testing.M) (int, error) {
	if bin := os.Getenv(proxyBinaryEnv); bin != "" {
		binPath = bin
		return m.Run(), nil
	}
	dir, err := os.MkdirTemp("", "proxy-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return 0, fmt.Errorf("finding the go tool: %w", err)
	}
	binPath = filepath.Join(dir, "codex-responses-api-proxy")
	// The release builds with CGO_ENABLED=0; so do we, through the build cache.
	build := exec.Command(goTool, "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the proxy: %w\n%s", err, out)
	}
	return m.Run(), nil
}

// newKey returns a fresh 40-character key of [A-Za-z0-9_-].
func newKey(t testing.TB) string {
	return randToken(t, 40)
}

func randToken(t testing.TB, n int) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

// options configure one proxy process.
type options struct {
	up          *fakeUpstream // sets --upstream-url (and trusts its TLS certificate)
	upstreamURL string        // --upstream-url when up is nil
	args        []string      // more flags
	env         []string      // the child's whole environment, besides SSL_CERT_FILE
	// stdin, if set, is the child's standard input instead of key+"\n";
	// secrets then lists what must never be echoed.
	stdin   io.Reader
	secrets []string
	// output, if set, is the child's stdout and stderr instead of buffers.
	output *os.File
	// serverInfo, if set, replaces the harness's --server-info path;
	// noServerInfo drops the flag.
	serverInfo   string
	noServerInfo bool
	dumpDir      string
	sysProcAttr  *syscall.SysProcAttr
	// noMemfdSecret runs the proxy as if the kernel had no memfd_secret(2).
	noMemfdSecret bool
}

// proxyProc is one running (or exited) proxy.
type proxyProc struct {
	t          testing.TB
	key        string
	cmd        *exec.Cmd
	stdout     syncBuffer
	stderr     syncBuffer
	received   syncBuffer // every byte any client of this test read from the proxy
	serverInfo string
	dumpDir    string
	secrets    [][]byte
	done       chan struct{} // closed once the process has been waited for
	port       int
	addr       string // 127.0.0.1:port
}

// launch starts the proxy without waiting for it to listen. Its cleanup stops
// it by PID and checks that no secret leaked.
func launch(t testing.TB, o options) *proxyProc {
	t.Helper()
	p := &proxyProc{t: t, key: newKey(t), done: make(chan struct{}), dumpDir: o.dumpDir}
	var stdin io.Reader = strings.NewReader(p.key + "\n")
	if o.stdin != nil {
		stdin = o.stdin
	}
	for _, s := range append(o.secrets, p.key) {
		p.secrets = append(p.secrets, []byte(s))
	}

	args := append([]string(nil), o.args...)
	env := append([]string(nil), o.env...)
	switch {
	case o.up != nil:
		args = append(args, "--upstream-url", o.up.url)
		env = append(env, o.up.env...)
	case o.upstreamURL != "":
		args = append(args, "--upstream-url", o.upstreamURL)
	}
	if !o.noServerInfo {
		p.serverInfo = o.serverInfo
		if p.serverInfo == "" {
			p.serverInfo = filepath.Join(t.TempDir(), "server-info.json")
		}
		args = append(args, "--server-info", p.serverInfo)
	}
	if o.dumpDir != "" {
		// The proxy takes no symbolic link in the path (macOS's temporary
		// directory is under one).
		p.dumpDir = resolvedPath(t, o.dumpDir)
		args = append(args, "--dump-dir", p.dumpDir)
	}

	p.cmd = exec.Command(binPath, args...)
	if o.noMemfdSecret {
		p.cmd = exec.Command(os.Args[0], args...)
		env = append(env, noMemfdSecretEnv+binPath)
	}
	p.cmd.Env = env
	if p.cmd.Env == nil {
		p.cmd.Env = []string{}
	}
	p.cmd.Stdin = stdin
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if o.output != nil {
		p.cmd.Stdout = o.output
		p.cmd.Stderr = o.output
	}
	p.cmd.SysProcAttr = o.sysProcAttr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting proxy: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		p.checkNoLeak()
	})
	return p
}

// startProxy launches the proxy and waits until it has written its
// server-info file.
func startProxy(t testing.TB, o options) *proxyProc {
	t.Helper()
	p := launch(t, o)
	p.waitReady()
	return p
}

// pid is the proxy's process id.
func (p *proxyProc) pid() int { return p.cmd.Process.Pid }

// waitReady polls the server-info file as the codex GitHub Action does.
func (p *proxyProc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(p.serverInfo)
		if err == nil && len(data) > 0 && data[len(data)-1] == '\n' {
			var info struct{ Port, PID int }
			if err := json.Unmarshal(data, &info); err != nil {
				p.t.Fatalf("server-info %q: %v", data, err)
			}
			p.port = info.Port
			p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(info.Port))
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("proxy exited with code %d before writing server info; stderr:\n%s", p.exitCode(), p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("no server info after %v; stderr:\n%s", startTimeout, p.stderr.String())
}

// exited reports whether the process has ended within d.
func (p *proxyProc) exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// waitExit waits (bounded) for the process to end and returns its exit code.
func (p *proxyProc) waitExit() int {
	p.t.Helper()
	if !p.exited(exitTimeout) {
		p.t.Fatalf("proxy still running after %v; stderr:\n%s", exitTimeout, p.stderr.String())
	}
	return p.exitCode()
}

// exitCode is the exit code of an ended process (-1 if killed by a signal).
func (p *proxyProc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// signal sends sig to the proxy's PID.
func (p *proxyProc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling proxy: %v", err)
	}
}

// stop ends the process by its PID: SIGTERM (where the OS has it), then
// SIGKILL, each wait bounded.
func (p *proxyProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	if p.cmd.Process.Signal(syscall.SIGTERM) == nil && p.exited(exitTimeout) {
		return
	}
	_ = p.cmd.Process.Kill()
	if !p.exited(exitTimeout) {
		p.t.Errorf("proxy pid %d did not die", p.pid())
	}
}

// checkNoLeak fails the test if a secret appears in anything the proxy
// wrote or the test received, or if a line on stderr lacks the program's
// prefix (a panic, a stray log).
func (p *proxyProc) checkNoLeak() {
	if stderr := p.stderr.String(); stderr != "" {
		for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
			if !strings.HasPrefix(line, linePrefix) {
				p.t.Errorf("stderr line without the %q prefix: %q", linePrefix, line)
			}
		}
	}
	places := map[string][]byte{
		"stdout":         p.stdout.Bytes(),
		"stderr":         p.stderr.Bytes(),
		"client traffic": p.received.Bytes(),
	}
	if p.serverInfo != "" {
		if data, err := os.ReadFile(p.serverInfo); err == nil {
			places["server-info file"] = data
		}
	}
	if p.dumpDir != "" {
		_ = filepath.WalkDir(p.dumpDir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if data, err := os.ReadFile(path); err == nil {
					places["dump file "+d.Name()] = data
				}
			}
			return nil
		})
	}
	for where, data := range places {
		for _, s := range p.secrets {
			if bytes.Contains(data, s) {
				p.t.Errorf("the key (or a secret of this test) appears in %s", where)
			}
		}
	}
}

// tapConn records every byte read from the proxy.
type tapConn struct {
	net.Conn
	tap io.Writer
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.tap.Write(b[:n])
	return n, err
}

// dial opens a recorded TCP connection to the proxy with an I/O deadline.
func (p *proxyProc) dial() net.Conn {
	p.t.Helper()
	c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
	if err != nil {
		p.t.Fatalf("dialling proxy: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return &tapConn{Conn: c, tap: &p.received}
}

// dialTapped is a DialContext for http.Transport: every connection goes to
// the proxy and is recorded.
func (p *proxyProc) dialTapped(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, tap: &p.received}, nil
}

// url is the proxy's endpoint for path.
func (p *proxyProc) url(path string) string { return "http://" + p.addr + path }

// client is an HTTP client whose connections go to the proxy and are
// recorded; it does not follow redirects or decompress.
func (p *proxyProc) client() *http.Client {
	tr := &http.Transport{
		DialContext:           p.dialTapped,
		DisableCompression:    true,
		ResponseHeaderTimeout: ioTimeout,
	}
	p.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       2 * ioTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// post sends body to /v1/responses with header and returns the response
// with its body read.
func (p *proxyProc) post(header http.Header, body []byte) (*http.Response, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url("/v1/responses"), bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := p.client().Do(req)
	if err != nil {
		p.t.Fatalf("POST /v1/responses: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("reading response body: %v", err)
	}
	return resp, got
}

// raw writes a raw request on a fresh connection and reads one response.
// In raw, "{addr}" stands for the proxy's host:port.
func (p *proxyProc) raw(raw string) (*http.Response, []byte) {
	p.t.Helper()
	c := p.dial()
	defer c.Close()
	return p.rawOn(c, raw)
}

// rawOn writes raw on c and reads one response.
func (p *proxyProc) rawOn(c net.Conn, raw string) (*http.Response, []byte) {
	p.t.Helper()
	raw = strings.ReplaceAll(raw, "{addr}", p.addr)
	if _, err := io.WriteString(c, raw); err != nil {
		p.t.Fatalf("writing request: %v", err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		p.t.Fatalf("reading response to %q: %v", firstLine(raw), err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("reading response body to %q: %v", firstLine(raw), err)
	}
	return resp, body
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// waitFor polls cond every 10 ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeUpstream is an httptest server standing in for the Responses API.
type fakeUpstream struct {
	srv  *httptest.Server
	url  string   // what the proxy gets as --upstream-url
	env  []string // SSL_CERT_FILE for TLS upstreams
	hits atomic.Int32
	// handlersDone counts handler calls that returned.
	handlersDone atomic.Int32
}

// upstreamPath is an Azure-style target: the proxy must use it verbatim.
const upstreamPath = "/openai/deployments/dep/responses?api-version=2025-04-01-preview"

// newUpstream starts a fake upstream, over TLS if useTLS, serving h.
func newUpstream(t testing.TB, useTLS bool, h http.HandlerFunc) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		defer u.handlersDone.Add(1)
		h(w, r)
	})
	if useTLS {
		// The proxy trusts the system roots; only the Unix loaders other than
		// macOS's let a test add one, through SSL_CERT_FILE.
		if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
			t.Skipf("cannot make the proxy trust a test certificate on %s", runtime.GOOS)
		}
		u.srv = httptest.NewTLSServer(counted)
		pemFile := filepath.Join(t.TempDir(), "upstream.pem")
		block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.srv.Certificate().Raw})
		if err := os.WriteFile(pemFile, block, 0o644); err != nil {
			t.Fatal(err)
		}
		u.env = []string{"SSL_CERT_FILE=" + pemFile, "SSL_CERT_DIR=" + filepath.Dir(pemFile)}
	} else {
		u.srv = httptest.NewServer(counted)
	}
	u.url = u.srv.URL + upstreamPath
	t.Cleanup(u.srv.Close)
	return u
}

// host is the upstream's host:port, the Host the proxy must send.
func (u *fakeUpstream) host() string {
	return strings.TrimPrefix(strings.TrimPrefix(u.srv.URL, "https://"), "http://")
}

// checkHits reports an error unless the upstream has seen exactly one more
// request than before if forwarded, and none more otherwise.
func (u *fakeUpstream) checkHits(t testing.TB, before int32, forwarded bool) {
	t.Helper()
	want := before
	if forwarded {
		want++
	}
	if got := u.hits.Load(); got != want {
		t.Errorf("upstream hits: got %d, want %d", got, want)
	}
}

// settle waits until every upstream handler that started has returned.
func (u *fakeUpstream) settle(t testing.TB) {
	t.Helper()
	if !waitFor(exitTimeout, func() bool { return u.handlersDone.Load() == u.hits.Load() }) {
		t.Fatalf("upstream handlers still running: %d of %d done", u.handlersDone.Load(), u.hits.Load())
	}
}

// sendEvent writes one server-sent event and flushes it.
func sendEvent(w http.ResponseWriter, name, data string) {
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
	w.(http.Flusher).Flush()
}

// event is one parsed server-sent event.
type event struct{ name, data string }

// readEvent reads one event (up to its blank line) from r.
func readEvent(r *bufio.Reader) (event, error) {
	var ev event
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return ev, nil
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		default:
			return ev, fmt.Errorf("unexpected SSE line %q", line)
		}
	}
}

// readEventTimeout is readEvent bounded by d.
func readEventTimeout(r *bufio.Reader, d time.Duration) (event, error) {
	type result struct {
		ev  event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := readEvent(r)
		ch <- result{ev, err}
	}()
	select {
	case res := <-ch:
		return res.ev, res.err
	case <-time.After(d):
		return event{}, errors.New("timed out waiting for an event")
	}
}

// resolvedPath is path with the symbolic links of its longest existing
// prefix resolved.
func resolvedPath(t testing.TB, path string) string {
	t.Helper()
	for dir := path; ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			rest, err := filepath.Rel(dir, path)
			if err != nil {
				t.Fatal(err)
			}
			return filepath.Join(real, rest)
		}
		if dir == filepath.Dir(dir) {
			t.Fatalf("no part of %s exists", path)
		}
	}
}
