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
