//go:build linux

package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/openai/codex-responses-api-proxy/go/internal/memcensus"
)

// The census of issue 4 ("Exactly one copy of the key"): after a few hundred
// requests, plain and streamed, concurrent, over keep-alive connections, and
// a few WebSockets (issue 11), the
// proxy holds exactly one copy of its key, in locked memory, or, where
// memfd_secret(2) backs it, none that even root can read, the secret mapping
// being the one unreadable region.

const (
	censusRequests    = 300
	censusConcurrency = 8
	censusEvents      = 5
	censusJSON        = `{"id":"resp_1","object":"response","status":"completed"}`
	// WebSocket mode (issue 11): sockets, each with a few turns.
	censusSockets = 4
	censusTurns   = 10
)

func TestKeyCensus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading the proxy's memory needs root (CAP_SYS_PTRACE): the proxy is not dumpable; not root")
	}
	tests := []struct {
		name          string
		useTLS        bool
		noMemfdSecret bool
	}{
		{name: "plain HTTP upstream", useTLS: false},
		{name: "TLS upstream", useTLS: true},
		// The fallback for kernels without memfd_secret(2): exactly one
		// readable copy, locked.
		{name: "TLS upstream without memfd_secret", useTLS: true, noMemfdSecret: true},
	}
	for _, tc := range tests {
		useTLS := tc.useTLS
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, useTLS, censusUpstream)
			p := startProxy(t, options{up: up, noMemfdSecret: tc.noMemfdSecret})
			// The startup line follows the server-info file.
			want := map[bool]string{false: "memfd_secret", true: "mlock"}[tc.noMemfdSecret]
			if !waitFor(ioTimeout, func() bool { return strings.Contains(p.stderr.String(), "key in "+want+" memory") }) {
				t.Fatalf("startup line does not say the key is in %s memory:\n%s", want, p.stderr.String())
			}

			sendCensusTraffic(t, p)
			sendCensusWebSockets(t, p)
			up.settle(t)
			if got := up.hits.Load(); got != censusRequests+censusSockets {
				t.Errorf("got %d requests upstream, want %d", got, censusRequests+censusSockets)
			}

			r, err := memcensus.Scan(p.pid(), []byte(p.key))
			if err != nil {
				t.Fatalf("scanning the proxy's memory: %v", err)
			}
			// The report masks the key: it shows where each copy is and the
			// bytes around it, which name the Go object that holds it.
			t.Logf("census of the key in pid %d: %v", p.pid(), r)
			checkCensus(t, r, !tc.noMemfdSecret)
		})
	}
}

// censusUpstream answers the census traffic: JSON, or censusEvents events
// when the request asks for a stream.
func censusUpstream(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		censusWebSocket(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if !strings.Contains(string(body), `"stream":true`) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, censusJSON)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for i := range censusEvents {
		sendEvent(w, "response.output_text.delta", fmt.Sprintf(`{"delta":"%d"}`, i))
	}
}

// checkCensus accepts one locked readable copy, or none readable with the
// key in the one [secretmem] region. Any other unreadable region could hide a
// copy, so it fails the census too.
func checkCensus(t *testing.T, r memcensus.Report, secretmem bool) {
	t.Helper()
	if secretmem != (len(r.Unreadable) > 0) {
		t.Errorf("got %d unreadable regions, want the key in memfd_secret memory: %v", len(r.Unreadable), secretmem)
	}
	secret := 0
	for _, u := range r.Unreadable {
		if u.Mapping != "[secretmem]" {
			t.Errorf("got unreadable region %#x-%#x in %s (%v), want none outside [secretmem]", u.Start, u.End, u.Mapping, u.Err)
			continue
		}
		secret++
	}
	switch {
	case secret > 1:
		t.Errorf("got %d unreadable [secretmem] regions, want at most 1", secret)
	case secret == 1 && len(r.Hits) != 0:
		t.Errorf("got %d readable copies besides the memfd_secret one, want 0 (see the census above)", len(r.Hits))
	case secret == 0 && len(r.Hits) != 1:
		t.Errorf("got %d copies, want exactly 1, locked (see the census above)", len(r.Hits))
	case secret == 0 && !r.Hits[0].Locked:
		t.Errorf("got the only copy in unlocked memory (%s %s), want it locked", r.Hits[0].Mapping, r.Hits[0].Perms)
	}
}

// sendCensusTraffic sends censusRequests POST /v1/responses from
// censusConcurrency workers sharing keep-alive connections; every third
// request is streamed.
func sendCensusTraffic(t *testing.T, p *proxyProc) {
	t.Helper()
	client := p.client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = censusConcurrency
	jobs := make(chan int, censusRequests)
	for i := range censusRequests {
		jobs <- i
	}
	close(jobs)
	errs := make(chan error, censusRequests)
	var wg sync.WaitGroup
	for range censusConcurrency {
		wg.Go(func() {
			for i := range jobs {
				errs <- censusRoundTrip(client, p.url("/v1/responses"), i)
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err == nil {
			continue
		}
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("got %d failed requests, want 0", failed)
	}
}

func censusRoundTrip(client *http.Client, url string, i int) error {
	streamed := i%3 == 0
	body := fmt.Sprintf(`{"model":"gpt-test","input":"request %d","stream":%v}`, i, streamed)
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	want := censusJSON
	if streamed {
		req.Header.Set("Accept", "text/event-stream")
		var b strings.Builder
		for i := range censusEvents {
			fmt.Fprintf(&b, "event: response.output_text.delta\ndata: {\"delta\":\"%d\"}\n\n", i)
		}
		want = b.String()
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("request %d: %w", i, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("request %d: reading the body: %w", i, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("request %d: got status %d, want %d", i, resp.StatusCode, http.StatusOK)
	}
	if string(got) != want {
		return fmt.Errorf("request %d: got body %q, want %q", i, got, want)
	}
	return nil
}

// censusWebSocket answers each message with censusEvents events.
func censusWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(r.Context(), 2*ioTimeout)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return
		}
		for i := range censusEvents {
			if c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"response.output_text.delta","delta":"%d"}`, i)) != nil {
				return
			}
		}
	}
}

// sendCensusWebSockets opens censusSockets WebSockets at once and runs
// censusTurns turns on each.
func sendCensusWebSockets(t *testing.T, p *proxyProc) {
	t.Helper()
	var wg sync.WaitGroup
	for range censusSockets {
		c, _, err := p.wsDial(t, http.Header{"Openai-Beta": {"responses_websockets=2026-02-06"}})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			for i := range censusTurns {
				if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"response.create","input":"turn %d"}`, i)); err != nil {
					t.Errorf("turn %d: %v", i, err)
					return
				}
				for range censusEvents {
					if _, _, err := c.Read(ctx); err != nil {
						t.Errorf("turn %d: %v", i, err)
						return
					}
				}
			}
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
	wg.Wait()
}
