package main_test

// Workload identity (issue 10) through the real binary: fake GitHub OIDC,
// token-exchange and upstream servers, all over TLS on loopback (they share
// httptest's certificate, which the proxy trusts through SSL_CERT_FILE).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const (
	oidcAudience = "api://openai x&y"
	oidcIDP      = "idp_123"
	oidcSA       = "sa_456"
	// githubPath carries a query of its own, kept byte for byte.
	githubPath = "/_apis/token?api-version=2.0&x=%2F"
)

// oidcFakes are GitHub's OIDC endpoint and the token endpoint.
type oidcFakes struct {
	t        *testing.T
	reqToken string
	jwts     []string // the n-th JWT request gets jwts[n]
	access   []string // the n-th exchange gets access[n]
	github   *fakeUpstream
	exchange *fakeUpstream

	mu         sync.Mutex
	githubReqs []seenOIDC
	exchReqs   []seenOIDC
	// githubAnswer and exchangeAnswer override the good answers when set.
	githubAnswer   func(n int) (int, string)
	exchangeAnswer func(n int) (int, string)
	expiresIn      int
}

// seenOIDC is what a fake received.
type seenOIDC struct {
	method, target, auth, accept, contentType, body string
	at                                              time.Time
}

const maxFakeTokens = 200

func newOIDCFakes(t *testing.T) *oidcFakes {
	f := &oidcFakes{t: t, reqToken: randToken(t, 60) + ".r_-", expiresIn: 3600}
	for range maxFakeTokens {
		f.jwts = append(f.jwts, "eyJ"+randToken(t, 20)+".eyJ"+randToken(t, 30)+"."+randToken(t, 40))
		f.access = append(f.access, "at-"+randToken(t, 50))
	}
	f.github = newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		n := f.record(&f.githubReqs, r)
		f.mu.Lock()
		answer := f.githubAnswer
		f.mu.Unlock()
		status, body := http.StatusOK, fmt.Sprintf(`{"count":1,"value":%q}`, f.jwts[n])
		if answer != nil {
			status, body = answer(n)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	f.exchange = newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		n := f.record(&f.exchReqs, r)
		f.mu.Lock()
		answer, expiresIn := f.exchangeAnswer, f.expiresIn
		f.mu.Unlock()
		status := http.StatusOK
		body := fmt.Sprintf(`{"access_token":%q,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"bearer","expires_in":%d}`, f.access[n], expiresIn)
		if answer != nil {
			status, body = answer(n)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	return f
}

func (f *oidcFakes) record(list *[]seenOIDC, r *http.Request) int {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	*list = append(*list, seenOIDC{
		method: r.Method, target: r.RequestURI, auth: r.Header.Get("Authorization"),
		accept: r.Header.Get("Accept"), contentType: r.Header.Get("Content-Type"), body: string(body), at: time.Now(),
	})
	n := len(*list) - 1
	if n >= maxFakeTokens {
		f.t.Errorf("more than %d token requests", maxFakeTokens)
		n = maxFakeTokens - 1
	}
	return n
}

func (f *oidcFakes) setExpiresIn(s int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expiresIn = s
}

func (f *oidcFakes) setExchange(answer func(n int) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exchangeAnswer = answer
}

func (f *oidcFakes) setGitHub(answer func(n int) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.githubAnswer = answer
}

func (f *oidcFakes) exchanges() []seenOIDC {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenOIDC(nil), f.exchReqs...)
}

func (f *oidcFakes) githubs() []seenOIDC {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenOIDC(nil), f.githubReqs...)
}

// secrets are every value that must never leave the proxy.
func (f *oidcFakes) secrets() []string {
	return append(append([]string{f.reqToken}, f.jwts...), f.access...)
}

// args are the flags of a proxy using the fakes.
func (f *oidcFakes) args() []string {
	return []string{
		"--github-oidc",
		"--oidc-audience", oidcAudience,
		"--identity-provider-id", oidcIDP,
		"--service-account-id", oidcSA,
		"--github-oidc-request-url", f.github.srv.URL + githubPath,
		"--token-exchange-url", f.exchange.srv.URL + "/oauth/token",
	}
}

// start launches a proxy in workload identity mode forwarding to up.
func (f *oidcFakes) start(up *fakeUpstream, more ...string) *proxyProc {
	f.t.Helper()
	return startProxy(f.t, f.options(up, more...))
}

func (f *oidcFakes) options(up *fakeUpstream, more ...string) options {
	return options{
		up:      up,
		args:    append(f.args(), more...),
		stdin:   strings.NewReader(f.reqToken + "\n"),
		secrets: f.secrets(),
	}
}

// tokenUpstream answers every POST with a small JSON body and records the
// bearer token of each request.
type tokenUpstream struct {
	*fakeUpstream
	mu     sync.Mutex
	tokens []string
	// reject, if set, makes the upstream answer 401 to this token.
	reject string
}

func newTokenUpstream(t *testing.T) *tokenUpstream {
	u := &tokenUpstream{}
	u.fakeUpstream = newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		u.mu.Lock()
		u.tokens = append(u.tokens, tok)
		reject := u.reject
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if tok == reject {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"expired token"}}`)
			return
		}
		io.WriteString(w, `{"id":"resp_1"}`)
	})
	return u
}

func (u *tokenUpstream) last() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.tokens) == 0 {
		return ""
	}
	return u.tokens[len(u.tokens)-1]
}

func postJSON(p *proxyProc) (int, string) {
	p.t.Helper()
	resp, body := p.post(http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer client-supplied"}}, []byte(`{"model":"m","input":"hi"}`))
	return resp.StatusCode, string(body)
}

func TestOIDCUsageErrors(t *testing.T) {
	good := func(drop string, extra ...string) []string {
		all := []string{
			"--github-oidc",
			"--oidc-audience", "aud",
			"--identity-provider-id", "idp",
			"--service-account-id", "sa",
			"--github-oidc-request-url", "https://token.actions.example/x?api-version=2.0",
		}
		var out []string
		for i := 0; i < len(all); i++ {
			if all[i] == drop {
				if drop != "--github-oidc" {
					i++
				}
				continue
			}
			out = append(out, all[i])
		}
		return append(out, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "all missing", args: []string{"--github-oidc"}, want: "error: --github-oidc requires --oidc-audience, --identity-provider-id, --service-account-id, --github-oidc-request-url"},
		{name: "audience missing", args: good("--oidc-audience"), want: "error: --github-oidc requires --oidc-audience\n"},
		{name: "identity provider missing", args: good("--identity-provider-id"), want: "error: --github-oidc requires --identity-provider-id\n"},
		{name: "service account missing", args: good("--service-account-id"), want: "error: --github-oidc requires --service-account-id\n"},
		{name: "request URL missing", args: good("--github-oidc-request-url"), want: "error: --github-oidc requires --github-oidc-request-url\n"},
		{name: "empty audience", args: good("", "--oidc-audience="), want: "error: --github-oidc requires --oidc-audience\n"},
		{name: "flags without --github-oidc", args: good("--github-oidc"), want: "error: --oidc-audience, --identity-provider-id, --service-account-id, --github-oidc-request-url only apply with --github-oidc"},
		{name: "exchange URL without --github-oidc", args: []string{"--token-exchange-url", "https://auth.example/t"}, want: "error: --token-exchange-url only apply with --github-oidc"},
		{name: "http request URL", args: good("--github-oidc-request-url", "--github-oidc-request-url", "http://token.example/x"), want: "error: --github-oidc-request-url: must be HTTPS"},
		{name: "user info", args: good("--github-oidc-request-url", "--github-oidc-request-url", "https://u:hunter2@token.example/x"), want: "error: --github-oidc-request-url: must be HTTPS without user info or fragment\n"},
		{name: "fragment", args: good("--github-oidc-request-url", "--github-oidc-request-url", "https://token.example/x#f"), want: "error: --github-oidc-request-url: must be HTTPS without user info or fragment"},
		{name: "relative", args: good("--github-oidc-request-url", "--github-oidc-request-url", "/x"), want: "error: --github-oidc-request-url: must be an absolute https:// URL"},
		{name: "http exchange URL", args: good("", "--token-exchange-url", "http://auth.example/t"), want: "error: --token-exchange-url: must be HTTPS"},
		{name: "remote upstream", args: good("", "--upstream-url", "https://example.com/v1/responses"), want: "error: --upstream-url: workload identity requires https://api.openai.com/"},
		{name: "http api.openai.com", args: good("", "--upstream-url", "http://api.openai.com/v1/responses"), want: "error: --upstream-url: workload identity requires"},
		{name: "api.openai.com on another port", args: good("", "--upstream-url", "https://api.openai.com:8443/v1/responses"), want: "error: --upstream-url: workload identity requires"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A pipe that stays open and empty: a proxy reading stdin would
			// block instead of exiting.
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			p := launch(t, options{args: tc.args, stdin: r, secrets: []string{"hunter2"}})
			if code := p.waitExit(); code != 2 {
				t.Errorf("got exit code %d, want 2; stderr:\n%s", code, p.stderr.String())
			}
			if got := p.stderr.String(); !strings.Contains(got, tc.want) {
				t.Errorf("got stderr %q, want it to contain %q", got, tc.want)
			}
			if _, err := os.Stat(p.serverInfo); err == nil {
				t.Errorf("got a server-info file, want none")
			}
		})
	}
}

// TestOIDCAcceptedURLs: loopback http endpoints and the loopback and default
// upstreams pass the flag checks (the proxy then fails at its first call,
// exit 1, not 2).
func TestOIDCAcceptedURLs(t *testing.T) {
	for _, up := range []string{"https://api.openai.com/v1/responses", "http://[::1]:1/v1/responses", "http://localhost:1/v1/responses"} {
		t.Run(up, func(t *testing.T) {
			p := launch(t, options{
				args: []string{"--github-oidc", "--oidc-audience", "a", "--identity-provider-id", "i", "--service-account-id", "s",
					"--github-oidc-request-url", "http://127.0.0.2:1/x", "--token-exchange-url", "http://127.0.0.1:1/t", "--upstream-url", up},
				stdin: strings.NewReader("tok\n"),
			})
			if code := p.waitExit(); code != 1 {
				t.Errorf("got exit code %d, want 1; stderr:\n%s", code, p.stderr.String())
			}
			if got := p.stderr.String(); !strings.Contains(got, "error: getting the GitHub OIDC token: ") {
				t.Errorf("got stderr %q, want the GitHub step named", got)
			}
		})
	}
}

// TestOIDCRequestsAndInjection checks every byte that matters of the two
// token calls and that the upstream gets the access token, not the client's
// Authorization.
func TestOIDCRequestsAndInjection(t *testing.T) {
	f := newOIDCFakes(t)
	up := newTokenUpstream(t)
	// Dumps, like every output, are checked for the secrets at cleanup.
	o := f.options(up.fakeUpstream)
	o.dumpDir = filepath.Join(t.TempDir(), "dumps")
	p := startProxy(t, o)
	if !waitFor(ioTimeout, func() bool {
		return strings.Contains(p.stderr.String(), "(workload identity, request token in memfd_secret memory)") ||
			strings.Contains(p.stderr.String(), "(workload identity, request token in mlock memory)")
	}) {
		t.Fatalf("no startup line naming workload identity:\n%s", p.stderr.String())
	}
	if !waitFor(ioTimeout, func() bool { return strings.Contains(p.stderr.String(), "workload identity: obtained an access token") }) {
		t.Errorf("no log line for the obtained token:\n%s", p.stderr.String())
	}

	gh := f.githubs()
	if len(gh) != 1 {
		t.Fatalf("got %d GitHub requests, want 1", len(gh))
	}
	wantTarget := githubPath + "&audience=api%3A%2F%2Fopenai%20x%26y"
	if g := gh[0]; g.method != "GET" || g.target != wantTarget || g.auth != "bearer "+f.reqToken || g.accept != "application/json" || g.body != "" {
		t.Errorf("GitHub got %s %q auth ok %v accept %q body %q; want GET %q, bearer <request token>, application/json, no body",
			g.method, g.target, g.auth == "bearer "+f.reqToken, g.accept, g.body, wantTarget)
	}
	ex := f.exchanges()
	if len(ex) != 1 {
		t.Fatalf("got %d exchange requests, want 1", len(ex))
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(ex[0].body), &body); err != nil {
		t.Fatalf("exchange body is not JSON: %v", err)
	}
	wantBody := map[string]any{
		"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
		"subject_token_type":   "urn:ietf:params:oauth:token-type:jwt",
		"subject_token":        f.jwts[0],
		"identity_provider_id": oidcIDP,
		"service_account_id":   oidcSA,
	}
	if g := ex[0]; g.method != "POST" || g.target != "/oauth/token" || g.contentType != "application/json" || g.auth != "" {
		t.Errorf("exchange got %s %q Content-Type %q Authorization %v; want POST /oauth/token, application/json, none", g.method, g.target, g.contentType, g.auth != "")
	}
	if len(body) != len(wantBody) {
		t.Errorf("exchange body has %d fields, want %d", len(body), len(wantBody))
	}
	for k, v := range wantBody {
		if body[k] != v {
			t.Errorf("exchange body %s: got a different value (not shown: it may be the JWT)", k)
		}
	}

	for i := range 3 {
		if status, _ := postJSON(p); status != http.StatusOK {
			t.Fatalf("request %d: got status %d, want 200", i, status)
		}
		if up.last() != f.access[0] {
			t.Fatalf("request %d: the upstream did not get the access token", i)
		}
	}
	if !waitFor(ioTimeout, func() bool { entries, _ := os.ReadDir(o.dumpDir); return len(entries) == 6 }) {
		t.Errorf("got no 6 dump files for 3 requests")
	}
}

// TestOIDCStartupFailures: each failure exits 1 with one line naming the
// step, writes no server-info file and never listens.
func TestOIDCStartupFailures(t *testing.T) {
	f := newOIDCFakes(t)
	up := newTokenUpstream(t)
	tests := []struct {
		name     string
		stdin    string
		github   func(int) (int, string)
		exchange func(int) (int, string)
		want     string
	}{
		{name: "empty request token", stdin: "\n", want: "error: OIDC request token is empty"},
		{name: "request token with a space", stdin: "abc def\n", want: "error: OIDC request token must match ^[A-Za-z0-9._-]+$"},
		{name: "request token too long", stdin: strings.Repeat("t", 16<<10+1) + "\n", want: "error: OIDC request token is longer than 16384 bytes"},
		{name: "GitHub 500", github: func(int) (int, string) { return 500, `{"message":"boom"}` }, want: "error: getting the GitHub OIDC token: HTTP 500\n"},
		{name: "GitHub bad JSON", github: func(int) (int, string) { return 200, `{"value":` }, want: "error: getting the GitHub OIDC token: answer is not a JSON object\n"},
		{name: "GitHub no JWT", github: func(int) (int, string) { return 200, `{"value":"not a jwt"}` }, want: `error: getting the GitHub OIDC token: answer has no "value" holding a JWT`},
		{name: "exchange 400", exchange: func(int) (int, string) {
			return 400, `{"error":"invalid_grant","error_description":"subject_token ` + f.jwts[0] + ` is bad"}`
		}, want: "error: exchanging the GitHub OIDC token for an OpenAI access token: HTTP 400 (invalid_grant)\n"},
		{name: "exchange 401 without JSON", exchange: func(int) (int, string) { return 401, "nope" }, want: "error: exchanging the GitHub OIDC token for an OpenAI access token: HTTP 401\n"},
		{name: "bad issued_token_type", exchange: func(n int) (int, string) {
			return 200, `{"access_token":"` + f.access[n] + `","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","expires_in":60}`
		}, want: `error: exchanging the GitHub OIDC token for an OpenAI access token: issued_token_type is "urn:ietf:params:oauth:token-type:jwt"`},
		{name: "bad token_type", exchange: func(n int) (int, string) {
			return 200, `{"access_token":"` + f.access[n] + `","token_type":"mac","expires_in":60}`
		}, want: `error: exchanging the GitHub OIDC token for an OpenAI access token: token_type is "mac", want Bearer`},
		{name: "expires_in 0", exchange: func(n int) (int, string) { return 200, `{"access_token":"` + f.access[n] + `","expires_in":0}` },
			want: "error: exchanging the GitHub OIDC token for an OpenAI access token: expires_in must be a positive number of seconds\n"},
		{name: "expires_in missing", exchange: func(n int) (int, string) { return 200, `{"access_token":"` + f.access[n] + `"}` },
			want: "error: exchanging the GitHub OIDC token for an OpenAI access token: expires_in must be a positive number of seconds\n"},
		{name: "no access_token", exchange: func(int) (int, string) { return 200, `{"expires_in":60}` },
			want: "error: exchanging the GitHub OIDC token for an OpenAI access token: answer has no access_token\n"},
		{name: "access token with a space", exchange: func(int) (int, string) { return 200, `{"access_token":"a b","expires_in":60}` },
			want: "error: exchanging the GitHub OIDC token for an OpenAI access token: access token must match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.setGitHub(tc.github)
			f.setExchange(tc.exchange)
			o := f.options(up.fakeUpstream)
			if tc.stdin != "" {
				o.stdin = strings.NewReader(tc.stdin)
				if tok := strings.TrimSpace(tc.stdin); tok != "" {
					o.secrets = append(o.secrets, tok)
				}
			}
			hits := up.hits.Load()
			p := launch(t, o)
			if code := p.waitExit(); code != 1 {
				t.Errorf("got exit code %d, want 1; stderr:\n%s", code, p.stderr.String())
			}
			stderr := p.stderr.String()
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tc.want)
			}
			if n := strings.Count(stderr, "\n"); n != 1 {
				t.Errorf("got %d stderr lines, want 1: %q", n, stderr)
			}
			if _, err := os.Stat(p.serverInfo); err == nil {
				t.Errorf("got a server-info file, want none")
			}
			up.checkHits(t, hits, false)
		})
	}
}

// TestOIDCRenewal: with expires_in 2 the token is renewed every second; a
// stream that spans renewals is not cut and keeps its token, every request
// succeeds, and later requests carry the newer token.
func TestOIDCRenewal(t *testing.T) {
	f := newOIDCFakes(t)
	f.setExpiresIn(2)
	released := make(chan struct{})
	var streamToken atomic.Value
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.Header.Get("Accept") == "text/event-stream" {
			streamToken.Store(tok)
			w.Header().Set("Content-Type", "text/event-stream")
			sendEvent(w, "response.created", `{"n":0}`)
			select {
			case <-released:
			case <-time.After(ioTimeout):
			}
			sendEvent(w, "response.completed", `{"n":1}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"tok":"`+fmt.Sprint(indexOf(f.access, tok))+`"}`)
	})
	p := f.start(up)

	// The stream starts on the first token.
	req, _ := http.NewRequest(http.MethodPost, p.url("/v1/responses"), strings.NewReader(`{"stream":true}`))
	req.Header.Set("Accept", "text/event-stream")
	resp, err := p.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if ev, err := readEventTimeout(br, ioTimeout); err != nil || ev.name != "response.created" {
		t.Fatalf("got first event %v, %v; want response.created", ev, err)
	}

	// Requests across at least two renewals all succeed; the token they
	// carry never goes back.
	deadline := time.Now().Add(10 * time.Second)
	last := 0
	for time.Now().Before(deadline) && len(f.exchanges()) < 4 {
		status, body := postJSON(p)
		if status != http.StatusOK {
			t.Fatalf("got status %d across a renewal, want 200: %s", status, body)
		}
		var got struct{ Tok string }
		json.Unmarshal([]byte(body), &got)
		var n int
		fmt.Sscan(got.Tok, &n)
		if n < last || n < 0 {
			t.Fatalf("got token #%d after #%d", n, last)
		}
		last = n
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(f.exchanges()); n < 4 {
		t.Fatalf("got %d exchanges in 10 s with expires_in 2, want at least 4", n)
	}
	if last < 2 {
		t.Errorf("requests after renewals carried token #%d, want #2 or later", last)
	}
	// The stream, which began with token #0, ends intact.
	close(released)
	if ev, err := readEventTimeout(br, ioTimeout); err != nil || ev.name != "response.completed" {
		t.Fatalf("got last event %v, %v; want response.completed", ev, err)
	}
	if streamToken.Load() != f.access[0] {
		t.Errorf("the stream did not start with the first token")
	}
	// Renewal runs at half-life: about a second apart, each with a fresh JWT.
	ex, gh := f.exchanges(), f.githubs()
	for i := 1; i < len(ex); i++ {
		if gap := ex[i].at.Sub(ex[i-1].at); gap < 700*time.Millisecond {
			t.Errorf("exchange %d came %v after the previous one, want about 1 s (half of expires_in)", i, gap)
		}
		if !strings.Contains(ex[i].body, f.jwts[i]) {
			t.Errorf("exchange %d did not use JWT #%d", i, i)
		}
	}
	if len(gh) < len(ex) {
		t.Errorf("got %d JWT requests for %d exchanges, want a fresh JWT each time", len(gh), len(ex))
	}
	if !waitFor(ioTimeout, func() bool { return strings.Contains(p.stderr.String(), "workload identity: renewed an access token") }) {
		t.Errorf("no log line for a renewal:\n%s", p.stderr.String())
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// TestOIDCRenewOn401: a 401 goes back to the client and renews the token at
// once, once per token.
func TestOIDCRenewOn401(t *testing.T) {
	f := newOIDCFakes(t)
	up := newTokenUpstream(t)
	up.reject = f.access[0]
	p := f.start(up.fakeUpstream)
	for i := range 3 {
		status, body := postJSON(p)
		if status == http.StatusOK {
			break
		}
		if status != http.StatusUnauthorized || !strings.Contains(body, "expired token") {
			t.Fatalf("request %d: got %d %q, want the upstream's 401", i, status, body)
		}
	}
	if !waitFor(ioTimeout, func() bool { return len(f.exchanges()) >= 2 }) {
		t.Fatalf("no renewal after a 401")
	}
	if !waitFor(ioTimeout, func() bool { status, _ := postJSON(p); return status == http.StatusOK }) {
		t.Fatalf("requests still fail after the renewal")
	}
	if up.last() != f.access[1] {
		t.Errorf("the request after the 401 did not carry the new token")
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(f.exchanges()); n != 2 {
		t.Errorf("got %d exchanges, want 2 (one renewal per refused token)", n)
	}
	if !waitFor(ioTimeout, func() bool {
		return strings.Contains(p.stderr.String(), "refused the access token (401); renewing now")
	}) {
		t.Errorf("no log line for the 401 renewal:\n%s", p.stderr.String())
	}
}

// TestOIDCExpiry503: while renewal keeps failing the proxy retries with
// backoff; after expiry it answers 503 and forwards nothing; once the token
// endpoint answers again, service resumes within seconds.
func TestOIDCExpiry503(t *testing.T) {
	f := newOIDCFakes(t)
	f.setExpiresIn(2)
	up := newTokenUpstream(t)
	p := f.start(up.fakeUpstream)
	f.setExchange(func(int) (int, string) { return 503, `{"error":"temporarily_unavailable"}` })
	started := time.Now()
	if !waitFor(5*time.Second, func() bool { status, _ := postJSON(p); return status == http.StatusServiceUnavailable }) {
		t.Fatalf("no 503 after the token expired")
	}
	if since := time.Since(started); since < time.Second {
		t.Errorf("got a 503 %v after renewal began failing, want it only after expiry (2 s after start)", since)
	}
	hits := up.hits.Load()
	status, body := postJSON(p)
	want := `{"error":{"message":"workload identity renewal temporarily unavailable; retry later","type":"proxy_error"}}` + "\n"
	if status != http.StatusServiceUnavailable || body != want {
		t.Errorf("got %d %q, want 503 %q", status, body, want)
	}
	up.checkHits(t, hits, false)
	for _, line := range []string{
		"renewal failed: exchanging the GitHub OIDC token for an OpenAI access token: HTTP 503 (temporarily_unavailable); next attempt in",
		"the access token expired at",
	} {
		if !waitFor(ioTimeout, func() bool { return strings.Contains(p.stderr.String(), line) }) {
			t.Errorf("no log line %q:\n%s", line, p.stderr.String())
		}
	}
	// Attempts go on, spaced by backoff (about 1 s, 2 s, ...) but never
	// more than one a second even though requests keep asking.
	time.Sleep(1500 * time.Millisecond)
	ex := f.exchanges()
	failing := ex[1:]
	if len(failing) < 2 {
		t.Fatalf("got %d failed attempts, want at least 2", len(failing))
	}
	for i := 1; i < len(failing); i++ {
		if gap := failing[i].at.Sub(failing[i-1].at); gap < 600*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous one, want backoff", i, gap)
		}
	}

	f.setExchange(nil)
	f.setExpiresIn(3600)
	recovered := time.Now()
	if !waitFor(ioTimeout, func() bool { status, _ := postJSON(p); return status == http.StatusOK }) {
		t.Fatalf("no recovery after the token endpoint came back")
	}
	if took := time.Since(recovered); took > 3*time.Second {
		t.Errorf("service resumed %v after the token endpoint came back, want within seconds", took)
	}
	if indexOf(f.access, up.last()) < 1 {
		t.Errorf("the request after recovery did not carry a new token")
	}
}

// TestOIDCShutdown: the proxy stops cleanly on GET /shutdown in this mode.
func TestOIDCShutdown(t *testing.T) {
	f := newOIDCFakes(t)
	up := newTokenUpstream(t)
	p := f.start(up.fakeUpstream, "--http-shutdown")
	if status, _ := postJSON(p); status != http.StatusOK {
		t.Fatalf("got %d, want 200", status)
	}
	resp, _ := p.raw("GET /shutdown HTTP/1.1\r\nHost: {addr}\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("shutdown: got %d", resp.StatusCode)
	}
	if code := p.waitExit(); code != 0 {
		t.Errorf("got exit code %d, want 0", code)
	}
}

// TestOIDCWebSocket: in WebSocket mode the upgrade carries the access token,
// an open socket outlives renewals (the token is only in its handshake), a
// new socket after a renewal carries the new token, and after expiry
// without renewal the upgrade is answered 503 and not forwarded.
func TestOIDCWebSocket(t *testing.T) {
	f := newOIDCFakes(t)
	f.setExpiresIn(2)
	seen := make(chan seenRequest, 1000) // never full: a full one would block the upstream
	up := wsUpstream(t, true, seen, func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil || c.Write(ctx, typ, msg) != nil {
				return
			}
		}
	})
	p := f.start(up)
	c, resp, err := p.wsDial(t, codexWSHeader())
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	if got := receive(t, seen).header.Get("Authorization"); got != "Bearer "+f.access[0] {
		t.Errorf("the upgrade did not carry the first access token")
	}
	// Across two renewals the socket keeps working. Renewals are one at a
	// time: once the fourth exchange has begun, token #2 is in use.
	if !waitFor(ioTimeout, func() bool { return len(f.exchanges()) >= 4 }) {
		t.Fatalf("no renewals with expires_in 2")
	}
	wsWrite(t, c, `{"type":"response.create"}`)
	if got := wsRead(t, c); got != `{"type":"response.create"}` {
		t.Errorf("got %q after renewals, want the echo", got)
	}
	c2, resp, err := p.wsDial(t, codexWSHeader())
	if err != nil {
		t.Fatalf("second dial: %v (response %v)", err, resp)
	}
	c2.CloseNow()
	if got := strings.TrimPrefix(receive(t, seen).header.Get("Authorization"), "Bearer "); indexOf(f.access, got) < 2 {
		t.Errorf("the upgrade after renewals carried token #%d, want #2 or later", indexOf(f.access, got))
	}

	f.setExchange(func(int) (int, string) { return 500, "" })
	if !waitFor(5*time.Second, func() bool {
		c, resp, err := p.wsDial(t, codexWSHeader())
		if c != nil {
			c.CloseNow()
		}
		return err != nil && resp != nil && resp.StatusCode == http.StatusServiceUnavailable
	}) {
		t.Fatalf("no 503 for an upgrade after the token expired")
	}
	hits := up.hits.Load()
	_, resp, err = p.wsDial(t, codexWSHeader())
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("got %v, %v; want 503", resp, err)
	}
	up.checkHits(t, hits, false)
}
