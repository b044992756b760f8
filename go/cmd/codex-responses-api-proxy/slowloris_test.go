package main_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// headerTimeout is the proxy's limit on sending request headers (main.go).
const headerTimeout = 10 * time.Second

// TestSlowHeadersCutOff plays slowloris: clients that trickle header lines
// forever are cut off once the header timeout has passed, however steadily
// they send, and the proxy serves a normal client all along.
func TestSlowHeadersCutOff(t *testing.T) {
	t.Parallel()
	p := startProxy(t, options{up: countingUpstream(t)})
	const slow = 32
	start := time.Now()
	var wg sync.WaitGroup
	cutAfter := make(chan time.Duration, slow)
	for range slow {
		c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Read in the background: the proxy's close shows up as EOF
			// (or a reset) whether or not it answers 408 first.
			closed := make(chan struct{})
			go func() {
				c.SetReadDeadline(time.Now().Add(headerTimeout + 10*time.Second))
				io.Copy(io.Discard, c)
				close(closed)
			}()
			io.WriteString(c, "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-closed:
					cutAfter <- time.Since(start)
					return
				case <-tick.C:
					io.WriteString(c, "X-Slow: 1\r\n")
				}
			}
		}()
	}

	// Meanwhile, a normal client is served, more than once.
	for range 3 {
		time.Sleep(2 * time.Second)
		if resp, body := p.post(nil, []byte(`{}`)); resp.StatusCode != 200 {
			t.Errorf("normal client during the attack: got %d %q, want 200", resp.StatusCode, body)
		}
	}

	wg.Wait()
	close(cutAfter)
	for d := range cutAfter {
		if d < headerTimeout-time.Second || d > headerTimeout+5*time.Second {
			t.Errorf("slow client cut off after %v, want about %v", d.Round(time.Millisecond), headerTimeout)
		}
	}
}

// bodyTimeout is the proxy's limit on a request body that stops (main.go).
const bodyTimeout = 30 * time.Second

// TestStalledBodiesReleaseSlots: with --max-connections 5, four clients that
// send a head and then stop inside their bodies (Content-Length or chunked,
// no byte or some) hold four slots only until the body timeout closes them;
// a normal client is served meanwhile, and afterwards five at once are
// (issue 15, finding 3). Small bodies are read before the upstream is
// contacted, so the upstream sees none of the stalled requests.
func TestStalledBodiesReleaseSlots(t *testing.T) {
	t.Parallel()
	up := countingUpstream(t)
	p := startProxy(t, options{up: up, args: []string{"--max-connections", "5"}})
	const head = "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
	stalls := []string{
		head + "Content-Length: 100\r\n\r\n",
		head + "Content-Length: 100\r\n\r\n{\"model\":",
		head + "Transfer-Encoding: chunked\r\n\r\n",
		head + "Transfer-Encoding: chunked\r\n\r\n10\r\n{\"model\":",
	}
	start := time.Now()
	closed := make(chan time.Duration, len(stalls))
	for _, stall := range stalls {
		c := p.dial()
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, stall)
		go func() {
			c.SetReadDeadline(time.Now().Add(bodyTimeout + 10*time.Second))
			io.Copy(io.Discard, c) // a 408, or nothing, and the close
			closed <- time.Since(start)
		}()
	}
	time.Sleep(time.Second)
	normal := p.dial()
	if resp, body := p.rawOn(normal, head+"Content-Length: 2\r\n\r\n{}"); resp.StatusCode != 200 {
		t.Errorf("normal client beside four stalled bodies: got %d %q, want 200", resp.StatusCode, body)
	}
	normal.Close()
	for range stalls {
		if d := <-closed; d < bodyTimeout-time.Second || d > bodyTimeout+5*time.Second {
			t.Errorf("stalled body closed after %v, want about %v", d.Round(time.Millisecond), bodyTimeout)
		}
	}

	// The slots are back: five clients at once, each served.
	var conns []net.Conn
	for range 5 {
		c := p.dial()
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns {
		resp, body := p.rawOn(c, head+"Content-Length: 2\r\n\r\n{}")
		if resp.StatusCode != 200 {
			t.Errorf("client %d of 5 after the timeout: got %d %q, want 200", i+1, resp.StatusCode, body)
		}
	}
	if got := up.hits.Load(); got != 6 {
		t.Errorf("upstream requests: got %d, want 6 (the normal ones only)", got)
	}
}
