package main_test

// The browser test of --allow-origin: headless Chromium loads a page from a
// loopback origin, and the page calls the proxy with fetch as a web tool
// would. It needs a Chromium binary named by chromiumEnv; scripts/test.sh
// installs one from Debian's packages (scripts/chromium.sh) and sets it.

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// chromiumEnv names the Chromium binary for the browser test.
const chromiumEnv = "E2E_CHROMIUM"

// Bounds of the browser test's waits: Chromium starts in a few seconds on an
// idle machine, in many more on a loaded one.
const (
	browserTimeout = 90 * time.Second // one chromium --dump-dom run
	pageTimeout    = 60 * time.Second // the page's fetch, within it
)

// pageHTML calls the proxy (%[1]q) with fetch and a JSON body, so the
// browser sends a preflight first, reads the streamed answer as it arrives,
// and writes the outcome into <pre id="result">. Once it has read the first
// event it tells its own server (/seen), which lets the upstream send the
// rest: the page cannot get the later events unless the first reached it
// alone. The <img> holds the load event, and with it --dump-dom, until the
// page has written its result (/done).
const pageHTML = `<!doctype html>
<html><head><title>allow-origin test</title></head><body>
<pre id="result">pending</pre>
<script>
async function run() {
  const resp = await fetch(%[1]q, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Client-Request-Id": "page-1"},
    body: JSON.stringify({model: "m", stream: true, input: "hi"}),
  });
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let text = "", told = false;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    text += decoder.decode(value, {stream: true});
    if (!told && text.includes("\n\n")) {
      told = true;
      await fetch("/seen");
    }
  }
  return resp.status + " " + resp.headers.get("Content-Type") + "\n" + text;
}
run().then(r => "ok " + r, e => "error " + e)
  .then(r => { document.getElementById("result").textContent = r; })
  .finally(() => fetch("/done"));
</script>
<img src="/hold" alt="">
</body></html>
`

// page serves pageHTML from its own loopback origin.
type page struct {
	srv        *httptest.Server
	seen, done chan struct{}
}

func newPage(t *testing.T, proxyURL *atomic.Value) *page {
	t.Helper()
	pg := &page{seen: make(chan struct{}, 1), done: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, pageHTML, proxyURL.Load().(string))
	})
	signal := func(ch chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case ch <- struct{}{}:
			default:
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("GET /seen", signal(pg.seen))
	mux.HandleFunc("GET /done", signal(pg.done))
	mux.HandleFunc("GET /hold", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-pg.done:
		case <-time.After(pageTimeout):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	pg.srv = httptest.NewServer(mux)
	t.Cleanup(pg.srv.Close)
	return pg
}

var resultRE = regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`)

// dumpDOM runs chromium --dump-dom on url and returns what the page wrote
// into its result. The browser and its helpers run in a process group of
// their own, killed by its ID whatever happens.
func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+filepath.Join(home, "profile"), "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	// Helpers that outlive the browser die with their group.
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	err := cmd.Wait()
	t.Logf("chromium ran %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v (context: %v)\nstderr:\n%s", url, err, ctx.Err(), tail(stderr.String(), 2000))
	}
	m := resultRE.FindSubmatch(stdout.Bytes())
	if m == nil {
		t.Fatalf("no result in the dumped DOM:\n%s\nstderr:\n%s", tail(stdout.String(), 2000), tail(stderr.String(), 2000))
	}
	return html.UnescapeString(string(m[1]))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestBrowserAllowOrigin: a page from the origin given to --allow-origin
// calls the proxy with fetch, passes the preflight, and reads the streamed
// answer event by event; the same page from another origin cannot, and
// nothing of its reaches the upstream.
func TestBrowserAllowOrigin(t *testing.T) {
	chromium := os.Getenv(chromiumEnv)
	if chromium == "" {
		t.Skipf("%s is not set: set it to a Chromium binary (scripts/test.sh sets it from scripts/chromium.sh)", chromiumEnv)
	}
	t.Parallel()

	var proxyURL atomic.Value
	allowed, other := newPage(t, &proxyURL), newPage(t, &proxyURL)
	var (
		seen    atomic.Pointer[chan struct{}] // the page the upstream waits for
		gotAuth atomic.Value
		gotBody atomic.Value
	)
	seen.Store(&allowed.seen)
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		gotAuth.Store(r.Header.Get("Authorization"))
		gotBody.Store(string(body))
		// The upstream's own grant must not reach the page: the proxy's does.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "text/event-stream")
		sendEvent(w, "response.created", `{"type":"response.created"}`)
		select {
		case <-*seen.Load():
		case <-time.After(pageTimeout):
			sendEvent(w, "error", `{"type":"error","message":"the page never read the first event"}`)
			return
		}
		sendEvent(w, "response.output_text.delta", `{"type":"response.output_text.delta","delta":"Hello from upstream"}`)
		sendEvent(w, "response.completed", `{"type":"response.completed"}`)
	})
	p := startProxy(t, options{up: up, args: []string{"--allow-origin", allowed.srv.URL}})
	proxyURL.Store(p.url("/v1/responses"))

	t.Run("allowed origin reads the stream", func(t *testing.T) {
		got := dumpDOM(t, chromium, allowed.srv.URL+"/")
		want := "ok 200 text/event-stream\n" +
			"event: response.created\ndata: {\"type\":\"response.created\"}\n\n" +
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hello from upstream\"}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n"
		if got != want {
			t.Errorf("page result: got %q, want %q", got, want)
		}
		up.checkHits(t, 0, true)
		if auth, _ := gotAuth.Load().(string); auth != "Bearer "+p.key {
			t.Errorf("upstream Authorization is not the proxy's key")
		}
		if body, _ := gotBody.Load().(string); body != `{"model":"m","stream":true,"input":"hi"}` {
			t.Errorf("upstream body: got %q", body)
		}
		// The browser did send a preflight, and the proxy answered it.
		if !waitFor(exitTimeout, func() bool {
			s := p.stderr.String()
			return hasAccessLine(s, "OPTIONS /v1/responses 204") && hasAccessLine(s, "POST /v1/responses 200")
		}) {
			t.Errorf("stderr: want a 204 OPTIONS and a 200 POST access line, got:\n%s", p.stderr.String())
		}
	})

	t.Run("other origin cannot", func(t *testing.T) {
		up.settle(t)
		before := up.hits.Load()
		refused := strings.Count(p.stderr.String(), "OPTIONS /v1/responses 403")
		got := dumpDOM(t, chromium, other.srv.URL+"/")
		if !strings.HasPrefix(got, "error TypeError") {
			t.Errorf("page result: got %q, want a failed fetch", got)
		}
		up.checkHits(t, before, false)
		if !waitFor(exitTimeout, func() bool { return strings.Count(p.stderr.String(), "OPTIONS /v1/responses 403") == refused+1 }) {
			t.Errorf("stderr: want one 403 OPTIONS access line, got:\n%s", p.stderr.String())
		}
	})
}
