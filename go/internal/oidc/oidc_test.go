package oidc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		raw     string
		wantErr string // "" accepts
	}{
		{raw: "https://token.actions.githubusercontent.com/x?api-version=2.0"},
		{raw: "http://127.0.0.1:8080/t"},
		{raw: "http://127.1.2.3/t"},
		{raw: "http://[::1]:9/t"},
		{raw: "http://localhost/t"},
		{raw: "http://example.com/t", wantErr: "must be HTTPS"},
		{raw: "http://127.0.0.1.example.com/t", wantErr: "must be HTTPS"},
		{raw: "ftp://example.com/t", wantErr: "must be an absolute https:// URL"},
		{raw: "//example.com/t", wantErr: "must be an absolute https:// URL"},
		{raw: "https:///t", wantErr: "must include a host"},
		{raw: "https://u:secret@example.com/t", wantErr: "must be HTTPS without user info or fragment"},
		{raw: "https://example.com/t#", wantErr: "must be HTTPS without user info or fragment"},
		{raw: "https://example.com/t#frag", wantErr: "must be HTTPS without user info or fragment"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			_, err := ParseEndpoint(tc.raw)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got error %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got error %v, want %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Errorf("error %q quotes the user info", err)
			}
		})
	}
}

func TestCheckUpstream(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://api.openai.com/v1/responses":     true,
		"https://API.openai.com:443/v1/responses": true,
		"http://127.0.0.1:9/v1/responses":         true,
		"https://[::1]/v1/responses":              true,
		"http://api.openai.com/v1/responses":      false,
		"https://api.openai.com:444/v1/responses": false,
		"https://api.openai.com.evil/v1":          false,
		"https://example.openai.azure.com/v1":     false,
	} {
		u, _ := url.Parse(raw)
		if err := CheckUpstream(u); (err == nil) != ok {
			t.Errorf("CheckUpstream(%q): got %v, want ok=%v", raw, err, ok)
		}
	}
}

func TestWithAudience(t *testing.T) {
	tests := []struct{ raw, audience, want string }{
		{"https://h/p?api-version=2.0&x=%2f+y", "api://Open AI&x", "https://h/p?api-version=2.0&x=%2f+y&audience=api%3A%2F%2FOpen%20AI%26x"},
		{"https://h/p", "aud", "https://h/p?audience=aud"},
		{"https://h/p?", "aud", "https://h/p?audience=aud"},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := WithAudience(u, tc.audience)
		if err != nil || got.String() != tc.want {
			t.Errorf("WithAudience(%q, %q): got %v, %v; want %q", tc.raw, tc.audience, got, err, tc.want)
		}
	}
}

func TestPlainString(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"abc"`, "abc", true},
		{`"a\/b"`, "a/b", true},
		{`"a\nb"`, "", false},
		{`"a\\"`, "", false},
		{`abc`, "", false},
		{`"`, "", false},
		{`""`, "", true},
	}
	for _, tc := range tests {
		got, ok := plainString([]byte(tc.raw))
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("plainString(%q): got %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

// fakes is a GitHub endpoint and a token endpoint over plain HTTP on
// loopback; each exchange answers a new token "tok<n>".
type fakes struct {
	mu        sync.Mutex
	exchanges int
	fail      bool
	expiresIn int
}

func newSource(t *testing.T, f *fakes) *Source {
	t.Helper()
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"value":"h.p.s"}`)
	}))
	t.Cleanup(gh.Close)
	ex := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"access_token":"tok%d","expires_in":%d}`, f.exchanges, f.expiresIn)
		f.exchanges++
	}))
	t.Cleanup(ex.Close)
	ghURL, _ := url.Parse(gh.URL + "/t")
	exURL, _ := url.Parse(ex.URL + "/t")
	s, err := New(Config{
		RequestURL: ghURL, Audience: "a", RequestToken: []byte("Authorization: bearer r\r\n"),
		ExchangeURL: exURL, IdentityProviderID: "i", ServiceAccountID: "s",
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestLeaseOutlivesRenewal: a lease keeps its token readable across a
// renewal and its release wipes it; new leases get the new token.
func TestLeaseOutlivesRenewal(t *testing.T) {
	f := &fakes{expiresIn: 3600}
	s := newSource(t, f)
	old, err := s.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(old.Line()); got != "Authorization: Bearer tok0\r\n" {
		t.Fatalf("got %q, want tok0", got)
	}
	old.Rejected() // renews now
	old.Rejected() // once per token: no second renewal
	deadline := time.Now().Add(10 * time.Second)
	var cur Lease
	for time.Now().Before(deadline) {
		if cur, err = s.Acquire(); err != nil {
			t.Fatal(err)
		}
		if string(cur.Line()) != "Authorization: Bearer tok0\r\n" {
			break
		}
		cur.Release()
		time.Sleep(10 * time.Millisecond)
	}
	defer cur.Release()
	if got := string(cur.Line()); got != "Authorization: Bearer tok1\r\n" {
		t.Fatalf("got %q after a 401, want tok1", got)
	}
	// The old lease still reads its token: the mapping is alive.
	if got := string(old.Line()); got != "Authorization: Bearer tok0\r\n" {
		t.Fatalf("got %q from the old lease, want tok0", got)
	}
	key := old.t.key
	old.Release()
	if key.HeaderLine() != nil {
		t.Errorf("the replaced token was not destroyed with its last lease")
	}
	time.Sleep(1200 * time.Millisecond)
	f.mu.Lock()
	n := f.exchanges
	f.mu.Unlock()
	if n != 2 {
		t.Errorf("got %d exchanges, want 2", n)
	}
}

// TestUnavailableAfterExpiry: with the clock past expiry and the token
// endpoint down, Acquire fails with ErrUnavailable and the token is wiped.
func TestUnavailableAfterExpiry(t *testing.T) {
	var offset atomic.Int64
	testOnlyNow = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	t.Cleanup(func() { testOnlyNow = time.Now })
	f := &fakes{expiresIn: 3600}
	s := newSource(t, f)
	f.mu.Lock()
	f.fail = true
	f.mu.Unlock()
	s.mu.Lock()
	key := s.cur.key
	s.mu.Unlock()
	offset.Store(int64(2 * time.Hour))
	if _, err := s.Acquire(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	dropped := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cur == nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for !dropped() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s.Close() // the renewal loop has ended: what it did happened before
	if key.HeaderLine() != nil {
		t.Errorf("the expired token was not wiped")
	}
}
