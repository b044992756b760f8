//go:build linux

package main_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/memcensus"
)

// The census of issue 10, run as for the key: after several renewals and a
// few hundred requests, the request token meets the key's standard (one
// copy, locked; none readable with memfd_secret), no replaced access token is
// left in locked memory, and the current one is in locked memory of its own.
// Readable copies of access tokens and JWTs (heap garbage of TLS records and
// read buffers) are reported, not failed: see docs and the closing note.
func TestOIDCCensus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading the proxy's memory needs root (CAP_SYS_PTRACE): the proxy is not dumpable; not root")
	}
	for _, noMemfdSecret := range []bool{false, true} {
		t.Run(fmt.Sprintf("memfd_secret=%v", !noMemfdSecret), func(t *testing.T) {
			f := newOIDCFakes(t)
			f.setExpiresIn(2) // renewed every second
			up := newUpstream(t, true, censusUpstream)
			o := f.options(up)
			o.noMemfdSecret = noMemfdSecret
			p := startProxy(t, o)

			deadline := time.Now().Add(20 * time.Second)
			batches := 0
			for len(f.exchanges()) < 5 && time.Now().Before(deadline) {
				sendCensusTraffic(t, p)
				batches++
				time.Sleep(300 * time.Millisecond)
			}
			// One last renewal to a long-lived token, so that none runs
			// during the scan; then traffic on it.
			f.setExpiresIn(3600)
			n := len(f.exchanges())
			if !waitFor(5*time.Second, func() bool { return len(f.exchanges()) > n }) {
				t.Fatalf("no renewal within 5 s")
			}
			time.Sleep(100 * time.Millisecond) // the exchange answered; let the proxy install it
			sendCensusTraffic(t, p)
			batches++
			up.settle(t)
			used := len(f.exchanges())
			if used < 6 {
				t.Fatalf("got %d tokens, want at least 6 (5 renewals)", used)
			}
			t.Logf("%d requests over %d access tokens and %d JWTs", batches*censusRequests, used, len(f.githubs()))

			scan := func(what string, needle string) memcensus.Report {
				r, err := memcensus.Scan(p.pid(), []byte(needle))
				if err != nil {
					t.Fatalf("scanning the proxy's memory: %v", err)
				}
				t.Logf("census of %s: %s", what, censored(r))
				return r
			}

			// The request token: the key's standard.
			r := scan("the request token", f.reqToken)
			secretRegions := 0
			for _, u := range r.Unreadable {
				if u.Mapping != "[secretmem]" {
					t.Errorf("got unreadable region %#x-%#x in %s (%v), want none outside [secretmem]", u.Start, u.End, u.Mapping, u.Err)
				}
				secretRegions++
			}
			if noMemfdSecret {
				if len(r.Hits) != 1 || !r.Hits[0].Locked {
					t.Errorf("got %d copies of the request token, want exactly 1, locked", len(r.Hits))
				}
			} else {
				// The request token and the current access token, nothing
				// else: replaced tokens were unmapped.
				if secretRegions != 2 {
					t.Errorf("got %d [secretmem] regions, want 2 (request token, current access token)", secretRegions)
				}
				if len(r.Hits) != 0 {
					t.Errorf("got %d readable copies of the request token, want 0", len(r.Hits))
				}
			}

			current := f.access[used-1]
			readable := map[string]int{}
			for i, tok := range f.access[:used] {
				r := scan(fmt.Sprintf("access token #%d", i), tok)
				locked := 0
				for _, h := range r.Hits {
					if h.Locked {
						locked++
					} else {
						readable["access token "+h.Mapping]++
					}
				}
				switch {
				case tok != current && locked != 0:
					t.Errorf("replaced access token #%d: got %d copies in locked memory, want 0", i, locked)
				case tok == current && noMemfdSecret && locked != 1:
					t.Errorf("current access token: got %d copies in locked memory, want 1", locked)
				case tok == current && !noMemfdSecret && locked != 0:
					t.Errorf("current access token: got %d readable locked copies, want 0 (it is in memfd_secret memory)", locked)
				}
			}
			for i := range f.githubs() {
				r := scan(fmt.Sprintf("JWT #%d", i), f.jwts[i])
				for _, h := range r.Hits {
					if h.Locked {
						t.Errorf("JWT #%d: got a copy in locked memory %s", i, h.Mapping)
					}
					readable["JWT "+h.Mapping]++
				}
			}
			t.Logf("readable copies (heap garbage of TLS and read buffers, see the closing note of issue 10): %v", readable)
		})
	}
}

// tokenish matches runs that could be (part of) a secret, so that the
// census's context bytes, which mask only their own needle, never log
// another secret.
var tokenish = regexp.MustCompile(`[A-Za-z0-9._~+/=-]{12,}`)

// censored is Report.String with every token-like run in the context bytes
// replaced by "#".
func censored(r memcensus.Report) string {
	r.Hits = slices.Clone(r.Hits)
	for i, h := range r.Hits {
		r.Hits[i].Before = tokenish.ReplaceAll(h.Before, []byte("#"))
		r.Hits[i].After = tokenish.ReplaceAll(h.After, []byte("#"))
	}
	return r.String()
}
