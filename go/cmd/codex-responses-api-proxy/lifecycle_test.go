package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const linePrefix = "codex-responses-api-proxy: "

func TestServerInfo(t *testing.T) {
	t.Parallel()
	freePort := func(t *testing.T) int {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	tests := []struct {
		name    string
		path    func(dir string) string
		prefill bool
		port    bool
	}{
		{name: "exact line", path: func(dir string) string { return filepath.Join(dir, "info.json") }},
		{name: "missing parent directories created", path: func(dir string) string { return filepath.Join(dir, "a", "b", "c", "info.json") }},
		{name: "longer existing file truncated", path: func(dir string) string { return filepath.Join(dir, "info.json") }, prefill: true},
		{name: "fixed port", path: func(dir string) string { return filepath.Join(dir, "info.json") }, port: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.path(t.TempDir())
			if tt.prefill {
				if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 4096), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			o := options{up: countingUpstream(t), serverInfo: path}
			want := 0
			if tt.port {
				want = freePort(t)
				o.args = []string{"--port", fmt.Sprint(want)}
			}
			p := startProxy(t, o)
			if tt.port && p.port != want {
				t.Errorf("port: got %d, want %d", p.port, want)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if line := fmt.Sprintf(`{"port":%d,"pid":%d}`+"\n", p.port, p.pid()); string(got) != line {
				t.Errorf("server info: got %q, want %q", got, line)
			}
			if resp, _ := p.raw("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET / on the advertised port: got %d, want %d", resp.StatusCode, http.StatusForbidden)
			}
		})
	}
}

func TestHTTPShutdown(t *testing.T) {
	t.Parallel()
	t.Run("raw", func(t *testing.T) {
		t.Parallel()
		p := startProxy(t, options{up: countingUpstream(t), args: []string{"--http-shutdown"}})
		resp, body := p.raw("GET /shutdown HTTP/1.1\r\nHost: {addr}\r\n\r\n")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
		}
		if resp.ContentLength != int64(len(body)) {
			t.Errorf("Content-Length: got %d, want %d", resp.ContentLength, len(body))
		}
		if code := p.waitExit(); code != 0 {
			t.Errorf("exit code: got %d, want 0; stderr:\n%s", code, p.stderr.String())
		}
	})
	t.Run("curl --fail", func(t *testing.T) {
		t.Parallel()
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not installed")
		}
		p := startProxy(t, options{up: countingUpstream(t), args: []string{"--http-shutdown"}})
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, "--fail", "--silent", "--show-error", p.url("/shutdown")).CombinedOutput()
		p.received.Write(out)
		if err != nil {
			t.Errorf("curl: %v: %s", err, out)
		}
		if code := p.waitExit(); code != 0 {
			t.Errorf("exit code: got %d, want 0; stderr:\n%s", code, p.stderr.String())
		}
	})
	t.Run("without the flag", func(t *testing.T) {
		t.Parallel()
		up := countingUpstream(t)
		p := startProxy(t, options{up: up})
		if resp, _ := p.raw("GET /shutdown HTTP/1.1\r\nHost: {addr}\r\n\r\n"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusForbidden)
		}
		if p.exited(300 * time.Millisecond) {
			t.Fatalf("proxy exited; stderr:\n%s", p.stderr.String())
		}
		if resp, _ := p.post(nil, []byte("{}")); resp.StatusCode != http.StatusOK {
			t.Errorf("POST after /shutdown: got %d, want %d", resp.StatusCode, http.StatusOK)
		}
	})
}

// TestBadKeys: every key that breaks the rule stops the proxy before it
// listens, with one error line naming the rule and never the key.
func TestBadKeys(t *testing.T) {
	t.Parallel()
	const (
		ruleEmpty   = "empty"
		ruleTooLong = "longer than 1024"
		ruleCharset = "[A-Za-z0-9_-]"
	)
	tok := func() string { return randToken(t, 24) }
	tests := []struct {
		name  string
		stdin string
		rule  string
	}{
		{name: "empty stdin", stdin: "", rule: ruleEmpty},
		{name: "only newline", stdin: "\n", rule: ruleEmpty},
		{name: "only CRLF", stdin: "\r\n", rule: ruleEmpty},
		{name: "empty first line", stdin: "\n" + tok() + "\n", rule: ruleEmpty},
		{name: "spaces", stdin: "    \n", rule: ruleCharset},
		{name: "leading space", stdin: " " + tok() + "\n", rule: ruleCharset},
		{name: "trailing space", stdin: tok() + " \n", rule: ruleCharset},
		{name: "tab", stdin: tok() + "\t" + tok() + "\n", rule: ruleCharset},
		{name: "Bearer prefix", stdin: "Bearer " + tok() + "\n", rule: ruleCharset},
		{name: "plus", stdin: tok() + "+" + tok() + "\n", rule: ruleCharset},
		{name: "slash", stdin: tok() + "/" + tok() + "\n", rule: ruleCharset},
		{name: "dot", stdin: tok() + "." + tok() + "\n", rule: ruleCharset},
		{name: "equals", stdin: tok() + "==\n", rule: ruleCharset},
		{name: "quotes", stdin: `"` + tok() + `"` + "\n", rule: ruleCharset},
		{name: "non-ASCII", stdin: tok() + "é" + tok() + "\n", rule: ruleCharset},
		{name: "NUL", stdin: tok() + "\x00" + tok() + "\n", rule: ruleCharset},
		{name: "CR inside", stdin: tok() + "\r" + tok() + "\n", rule: ruleCharset},
		{name: "1025 characters", stdin: randToken(t, 1025) + "\n", rule: ruleTooLong},
		{name: "10000 characters without newline", stdin: randToken(t, 10000), rule: ruleTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Every run of 8 key bytes is a secret: no part may be echoed.
			var secrets []string
			line, _, _ := strings.Cut(tt.stdin, "\n")
			for i := 0; i+8 <= len(line); i += 8 {
				if s := line[i : i+8]; strings.Trim(s, " ") != "" {
					secrets = append(secrets, s)
				}
			}
			p := launch(t, options{up: countingUpstream(t), stdin: strings.NewReader(tt.stdin), secrets: secrets})
			if code := p.waitExit(); code != 1 {
				t.Errorf("exit code: got %d, want 1", code)
			}
			var errLines []string
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.HasPrefix(l, linePrefix+"error:") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], tt.rule) {
				t.Errorf("error lines: got %q, want one naming %q", errLines, tt.rule)
			}
			if _, err := os.Stat(p.serverInfo); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("server info after a bad key: got %v, want no file", err)
			}
		})
	}
}

// TestRuntimeStartupErrors: failures after the command line was accepted
// exit 1 with one error line, and no server info.
func TestRuntimeStartupErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // the subtests run after this function returns
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		info    string // --server-info, if not the default
		mention string
	}{
		{name: "port in use", args: []string{"--port", fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)}, mention: fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)},
		{name: "dump dir is a file", args: []string{"--dump-dir", file}, mention: "dump"},
		{name: "server info under a file", info: filepath.Join(file, "info.json"), mention: "server info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			refusedAtStartup(t, tt.args, tt.info, tt.mention)
		})
	}
}

// refusedAtStartup starts the proxy with args and checks that it exits 1
// with an error line mentioning mention, having written no server info to
// info (a file of the test's own if empty).
func refusedAtStartup(t *testing.T, args []string, info, mention string) {
	t.Helper()
	if info == "" {
		info = filepath.Join(t.TempDir(), "info.json")
	}
	p := launch(t, options{up: countingUpstream(t), args: args, serverInfo: info})
	if code := p.waitExit(); code != 1 {
		t.Errorf("exit code: got %d, want 1; stderr:\n%s", code, p.stderr.String())
	}
	if stderr := p.stderr.String(); !strings.Contains(stderr, linePrefix+"error:") || !strings.Contains(stderr, mention) {
		t.Errorf("stderr: got %q, want an error line mentioning %q", stderr, mention)
	}
	if _, err := os.Stat(info); err == nil {
		t.Errorf("server info: got a file, want none")
	}
}

// TestGoodKeyShapes: the accepted line endings and lengths all give the
// upstream exactly "Bearer <key>".
func TestGoodKeyShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		key    string
		format string
	}{
		{name: "LF", key: newKey(t), format: "%s\n"},
		{name: "CRLF", key: newKey(t), format: "%s\r\n"},
		{name: "EOF without newline", key: newKey(t), format: "%s"},
		{name: "later lines ignored", key: newKey(t), format: "%s\nsecond line\n"},
		{name: "1024 characters", key: randToken(t, 1024), format: "%s\n"},
		{name: "one character", key: "k", format: "%s\n"},
		{name: "dashes and underscores", key: "sk-proj_" + newKey(t), format: "%s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := make(chan seenRequest, 1)
			up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				seen <- capture(r)
			})
			var secrets []string
			if len(tt.key) > 1 {
				secrets = []string{tt.key}
			}
			p := startProxy(t, options{up: up, stdin: strings.NewReader(fmt.Sprintf(tt.format, tt.key)), secrets: secrets})
			if resp, _ := p.post(nil, []byte("{}")); resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
			}
			if got := receive(t, seen).header["Authorization"]; !slices.Equal(got, []string{"Bearer " + tt.key}) {
				t.Errorf("upstream Authorization: got %d values, want exactly one with the key", len(got))
			}
		})
	}
}

// TestUsageErrors: a bad command line exits 2 before standard input is
// read: the key the test wrote into the pipe is still there afterwards.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	password := randToken(t, 16)
	tests := []struct {
		name    string
		args    []string
		mention string
	}{
		{name: "relative URL", args: []string{"--upstream-url", "/v1/responses"}, mention: "--upstream-url"},
		{name: "no scheme", args: []string{"--upstream-url", "api.openai.com/v1/responses"}, mention: "--upstream-url"},
		{name: "ftp", args: []string{"--upstream-url", "ftp://127.0.0.1/v1/responses"}, mention: "--upstream-url"},
		{name: "file", args: []string{"--upstream-url", "file:///etc/passwd"}, mention: "--upstream-url"},
		{name: "scheme only", args: []string{"--upstream-url", "https://"}, mention: "--upstream-url"},
		{name: "empty host", args: []string{"--upstream-url", "http:///x"}, mention: "--upstream-url"},
		{name: "port without host", args: []string{"--upstream-url", "http://:8080/x"}, mention: "--upstream-url"},
		{name: "empty", args: []string{"--upstream-url", ""}, mention: "--upstream-url"},
		{name: "userinfo", args: []string{"--upstream-url", "https://user:" + password + "@127.0.0.1/v1/responses"}, mention: "--upstream-url"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, mention: "no-such-flag"},
		{name: "positional argument", args: []string{"serve"}, mention: "serve"},
		{name: "port not a number", args: []string{"--port", "http"}, mention: "--port"},
		{name: "port out of range", args: []string{"--port", "65536"}, mention: "--port"},
		{name: "max connections not a number", args: []string{"--max-connections", "many"}, mention: "--max-connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			key := newKey(t) + "\n"
			if _, err := io.WriteString(w, key); err != nil {
				t.Fatal(err)
			}
			p := launch(t, options{args: tt.args, stdin: r, secrets: []string{password}})
			if code := p.waitExit(); code != 2 {
				t.Errorf("exit code: got %d, want 2; stderr:\n%s", code, p.stderr.String())
			}
			if stderr := p.stderr.String(); !strings.Contains(stderr, linePrefix+"error:") || !strings.Contains(stderr, tt.mention) {
				t.Errorf("stderr: got %q, want an error line mentioning %q", stderr, tt.mention)
			}
			if _, err := os.Stat(p.serverInfo); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("server info after a usage error: got %v, want no file", err)
			}
			r.SetReadDeadline(time.Now().Add(time.Second))
			left := make([]byte, len(key)+1)
			n, _ := io.ReadAtLeast(r, left, len(key))
			if string(left[:n]) != key {
				t.Errorf("standard input was read: %d of %d bytes left", n, len(key))
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{name: "version", args: []string{"--version"}},
		{name: "help", args: []string{"--help"}, wants: []string{
			"--port", "--server-info", "--http-shutdown", "--upstream-url", "--dump-dir",
			"--allow-origin", "--allow-user", "--allow-group", "--max-body-bytes", "--max-connections", "--version",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := launch(t, options{args: tt.args, noServerInfo: true})
			if code := p.waitExit(); code != 0 {
				t.Errorf("exit code: got %d, want 0; stderr:\n%s", code, p.stderr.String())
			}
			out := p.stdout.String()
			if strings.TrimSpace(out) == "" {
				t.Errorf("stdout: got nothing, want output")
			}
			for _, want := range tt.wants {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
