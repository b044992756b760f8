package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request bodies: what a client sends for a non-streamed and a streamed turn.
const (
	jsonRequest   = `{"model":"gpt-5","input":"ping","stream":false}`
	streamRequest = `{"model":"gpt-5","input":"ping","stream":true}`
)

// newClient returns a keep-alive HTTP/1.1 client for up to conns
// concurrent connections, with no proxy from the environment.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		DisableCompression:    true,
		ResponseHeaderTimeout: 15 * time.Second, // bounds a proxy that stalls a request
	}}
}

// newRequest builds a POST to the target; only the direct target carries
// an Authorization header, the proxies inject theirs.
func (t *target) newRequest(ctx context.Context, mode string, body io.Reader, size int64) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerMode, mode)
	req.Header.Set(headerTarget, t.name)
	if t.auth != "" {
		req.Header.Set("Authorization", t.auth)
	}
	return req, nil
}

// postJSON sends one small JSON POST and reads the whole answer.
func postJSON(ctx context.Context, c *http.Client, t *target) (time.Duration, error) {
	req, err := t.newRequest(ctx, "json", strings.NewReader(jsonRequest), int64(len(jsonRequest)))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("reading answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK || n != int64(len(jsonAnswer)) {
		return 0, fmt.Errorf("got status %d with %d bytes, want 200 with %d", resp.StatusCode, n, len(jsonAnswer))
	}
	return elapsed, nil
}

// stream runs one SSE request and returns the time from sending it to the
// first event and, per event, its arrival minus the upstream's send stamp.
// It fails unless all p.events arrive in order and the stream ends cleanly.
func stream(ctx context.Context, c *http.Client, t *target, p sseParams) (time.Duration, []time.Duration, error) {
	req, err := t.newRequest(ctx, "sse", strings.NewReader(streamRequest), int64(len(streamRequest)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	p.set(req.Header)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return 0, nil, fmt.Errorf("got status %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var first time.Duration
	delays := make([]time.Duration, 0, p.events)
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var ev []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 && len(ev) == 0 {
			break
		}
		if err != nil {
			return 0, nil, fmt.Errorf("after %d of %d events: %w", len(delays), p.events, err)
		}
		if len(line) > 1 {
			ev = append(ev, line...)
			continue
		}
		now := time.Now()
		seq, stamp, err := parseEvent(ev)
		if err != nil {
			return 0, nil, err
		}
		if seq != len(delays) {
			return 0, nil, fmt.Errorf("got event %d, want %d", seq, len(delays))
		}
		if seq == 0 {
			first = now.Sub(start)
		}
		delays = append(delays, time.Duration(now.UnixNano()-stamp))
		ev = ev[:0]
	}
	if len(delays) != p.events {
		return 0, nil, fmt.Errorf("got %d events, want %d", len(delays), p.events)
	}
	return first, delays, nil
}

// measureSSE runs n streams one after another on one keep-alive client.
func measureSSE(ctx context.Context, t *target, p sseParams, n int) {
	c := newClient(1)
	defer c.CloseIdleConnections()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		first, delays, err := stream(ctx, c, t, p)
		if err != nil {
			t.result.fail("sse", err)
			continue
		}
		t.result.firstEvent = append(t.result.firstEvent, first)
		t.result.eventDelay = append(t.result.eventDelay, delays...)
	}
}

// measureJSON sends n small JSON POSTs one after another on one
// keep-alive connection, after one untimed request that opens it. It
// returns this round's latencies.
func measureJSON(ctx context.Context, t *target, n int) []time.Duration {
	c := newClient(1)
	defer c.CloseIdleConnections()
	if _, err := postJSON(ctx, c, t); err != nil {
		t.result.fail("json", err)
		return nil
	}
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		d, err := postJSON(ctx, c, t)
		if err != nil {
			t.result.fail("json", err)
			continue
		}
		lat = append(lat, d)
	}
	return lat
}

// measureThroughput runs conns keep-alive clients sending small JSON POSTs
// for d (after each has opened its connection) and returns requests per
// second and the target's CPU time per request (0 without a process or /proc).
func measureThroughput(ctx context.Context, t *target, conns int, d time.Duration) (float64, time.Duration) {
	c := newClient(conns)
	defer c.CloseIdleConnections()
	var warm sync.WaitGroup
	for range conns {
		warm.Go(func() {
			if _, err := postJSON(ctx, c, t); err != nil {
				t.result.fail("throughput", err)
			}
		})
	}
	warm.Wait()
	var pids []int
	var cpu0 time.Duration
	if t.proc != nil {
		pids = procTree(t.proc.pid())
		cpu0, _ = cpuTime(pids)
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := postJSON(ctx, c, t); err != nil {
					t.result.fail("throughput", err)
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := done.Load()
	if n == 0 {
		return 0, 0
	}
	var perRequest time.Duration
	if pids != nil {
		if cpu1, err := cpuTime(pids); err == nil {
			perRequest = (cpu1 - cpu0) / time.Duration(n)
		}
	}
	return float64(n) / elapsed.Seconds(), perRequest
}

// patternReader yields size bytes of a repeating pattern without holding
// them: the client's memory stays flat however large the body.
type patternReader struct{ remaining int64 }

const pattern = `{"type":"input_text","text":"lorem ipsum dolor sit amet"},`

func (r *patternReader) Read(p []byte) (int, error) {
	if r.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	for i := 0; i < len(p); {
		i += copy(p[i:], pattern)
	}
	r.remaining -= int64(len(p))
	return len(p), nil
}

// measureBody streams a size-byte request body, checks that the upstream
// counted all of it, and returns the time taken and the growth of the
// target's peak RSS over its RSS before (-1 without a process or /proc).
func measureBody(ctx context.Context, t *target, size int64) (time.Duration, int64, error) {
	var pids []int
	var rss0 int64 = -1
	if t.proc != nil {
		pids = procTree(t.proc.pid())
		if err := resetPeak(pids); err == nil {
			rss0, _, _ = memory(pids)
		}
	}
	c := newClient(1)
	defer c.CloseIdleConnections()
	req, err := t.newRequest(ctx, "count", &patternReader{remaining: size}, size)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	var got struct {
		Bytes int64 `json:"bytes"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<10)).Decode(&got)
	resp.Body.Close()
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusOK || err != nil || got.Bytes != size {
		return 0, 0, fmt.Errorf("got status %d, %d bytes counted (%v), want 200, %d", resp.StatusCode, got.Bytes, err, size)
	}
	growth := int64(-1)
	if rss0 >= 0 {
		if _, hwm, err := memory(pids); err == nil {
			growth = hwm - rss0
		}
	}
	return elapsed, growth, nil
}

// measureStreams holds n concurrent slow streams, counts those served
// completely, and returns the target's peak RSS meanwhile: the larger of
// VmHWM (reset before) and VmRSS sampled every 10 ms, summed over the
// process tree (-1 without a process or /proc).
func measureStreams(ctx context.Context, t *target, n int, p sseParams) (int, int64) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(p.events)*p.interval+60*time.Second)
	defer cancel()
	var pids []int
	peak := int64(-1)
	if t.proc != nil {
		pids = procTree(t.proc.pid())
		if err := resetPeak(pids); err == nil {
			peak = 0
		}
	}
	// sample runs in the sampler, then once more after it stopped.
	sample := func() {
		if peak < 0 {
			return
		}
		rss, hwm, err := memory(pids)
		if err != nil {
			return
		}
		peak = max(peak, rss, hwm)
	}
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				sample()
			}
		}
	})
	c := newClient(n)
	defer c.CloseIdleConnections()
	var served atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, _, err := stream(ctx, c, t, p); err != nil {
				t.result.fail("streams", err)
				return
			}
			served.Add(1)
		})
	}
	wg.Wait()
	close(stopSampling)
	sampler.Wait()
	sample()
	return int(served.Load()), peak
}
