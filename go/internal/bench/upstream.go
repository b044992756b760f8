package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The fake upstream runs as a child process (this binary with the
// serveUpstreamArg argument) so that its CPU time, garbage collection and
// scheduling do not mix with the measuring client's. Requests pick what it
// answers with these headers, which every proxy forwards untouched.
const (
	serveUpstreamArg = "serve-upstream"

	headerMode     = "X-Bench-Mode"     // "json", "sse" or "count"
	headerTarget   = "X-Bench-Target"   // target name, for per-target failure counts
	headerEvents   = "X-Bench-Events"   // sse: number of events
	headerSize     = "X-Bench-Size"     // sse: bytes per event
	headerInterval = "X-Bench-Interval" // sse: time between events (Go duration)

	maxEvents    = 100000
	maxEventSize = 1 << 20
)

// jsonAnswer is a small non-streamed Responses API answer.
const jsonAnswer = `{"id":"resp_bench","object":"response","status":"completed","output":[]}`

// upstream is the fake Responses API. It answers 401 to, and counts, every
// request whose Authorization is not exactly one "Bearer <key>".
type upstream struct {
	auth []byte

	mu     sync.Mutex
	counts map[string]*upstreamCounts
}

// upstreamCounts are what /stats reports per target.
type upstreamCounts struct {
	Requests     int64 `json:"requests"`
	AuthFailures int64 `json:"auth_failures"`
	BadRequests  int64 `json:"bad_requests"`
	BodyBytes    int64 `json:"body_bytes"`
}

func newUpstream(key string) *upstream {
	return &upstream{auth: []byte("Bearer " + key), counts: map[string]*upstreamCounts{}}
}

func (u *upstream) count(target string, f func(c *upstreamCounts)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.counts[target]
	if c == nil {
		c = &upstreamCounts{}
		u.counts[target] = c
	}
	f(c)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/stats" {
		u.mu.Lock()
		defer u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(u.counts)
		return
	}
	target := r.Header.Get(headerTarget)
	u.count(target, func(c *upstreamCounts) { c.Requests++ })
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 || subtle.ConstantTimeCompare([]byte(auth[0]), u.auth) != 1 {
		u.count(target, func(c *upstreamCounts) { c.AuthFailures++ })
		http.Error(w, "bad authorization", http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/v1/responses" && r.Header.Get("Upgrade") != "" {
		if err := serveWebSocket(w, r); err != nil {
			u.count(target, func(c *upstreamCounts) { c.BadRequests++ })
		}
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/responses" {
		u.count(target, func(c *upstreamCounts) { c.BadRequests++ })
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	n, err := io.Copy(io.Discard, r.Body)
	u.count(target, func(c *upstreamCounts) { c.BodyBytes += n })
	if err != nil || (r.ContentLength >= 0 && n != r.ContentLength) {
		u.count(target, func(c *upstreamCounts) { c.BadRequests++ })
		http.Error(w, "truncated body", http.StatusBadRequest)
		return
	}
	switch r.Header.Get(headerMode) {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(jsonAnswer)))
		_, _ = io.WriteString(w, jsonAnswer)
	case "count":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"bytes":%d}`, n)
	case "sse":
		p, err := parseSSEParams(r.Header)
		if err != nil {
			u.count(target, func(c *upstreamCounts) { c.BadRequests++ })
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		serveSSE(w, r, p)
	default:
		u.count(target, func(c *upstreamCounts) { c.BadRequests++ })
		http.Error(w, "unknown "+headerMode, http.StatusBadRequest)
	}
}

// sseParams shape one stream: events of size bytes, interval apart.
type sseParams struct {
	events   int
	size     int
	interval time.Duration
}

func (p sseParams) set(h http.Header) {
	h.Set(headerMode, "sse")
	h.Set(headerEvents, strconv.Itoa(p.events))
	h.Set(headerSize, strconv.Itoa(p.size))
	h.Set(headerInterval, p.interval.String())
}

func parseSSEParams(h http.Header) (sseParams, error) {
	events, err1 := strconv.Atoi(h.Get(headerEvents))
	size, err2 := strconv.Atoi(h.Get(headerSize))
	interval, err3 := time.ParseDuration(h.Get(headerInterval))
	if err := errors.Join(err1, err2, err3); err != nil {
		return sseParams{}, fmt.Errorf("parsing stream parameters: %w", err)
	}
	p := sseParams{events: events, size: size, interval: interval}
	return p, p.check()
}

func (p sseParams) check() error {
	if p.events < 1 || p.events > maxEvents || p.size < 0 || p.size > maxEventSize || p.interval < 0 || p.interval > time.Minute {
		return errors.New("stream parameters out of range")
	}
	return nil
}

// serveSSE sends p.events events, the first at once and the others
// p.interval apart on a fixed schedule. Each event is stamped with its wall
// clock send time in Unix nanoseconds, the clock the client shares on the
// same machine, and padded to p.size bytes:
//
//	event: response.output_text.delta
//	data: {"seq":3,"t":1767225600000000000,"pad":"xxxx"}
func serveSSE(w http.ResponseWriter, r *http.Request, p sseParams) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	sendEvents(r.Context(), p, func(ev []byte) error {
		if _, err := w.Write(ev); err != nil {
			return err
		}
		return rc.Flush()
	})
}

// sendEvents passes p.events events to send, the first at once and the
// others p.interval apart on a fixed schedule, until send fails or ctx ends.
func sendEvents(ctx context.Context, p sseParams, send func(ev []byte) error) {
	start := time.Now()
	buf := make([]byte, 0, p.size+128)
	for seq := 0; seq < p.events; seq++ {
		if d := time.Until(start.Add(time.Duration(seq) * p.interval)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		buf = appendEvent(buf[:0], seq, time.Now().UnixNano(), p.size)
		if send(buf) != nil {
			return
		}
	}
}

const eventPrefix = "event: response.output_text.delta\ndata: "

// appendEvent appends one stamped event padded to size bytes (or longer
// when size is smaller than the event without padding).
func appendEvent(b []byte, seq int, stamp int64, size int) []byte {
	start := len(b)
	b = append(b, eventPrefix+`{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, stamp, 10)
	b = append(b, `,"pad":"`...)
	for pad := size - (len(b) - start) - len(`"}`+"\n\n"); pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, `"}`+"\n\n"...)
}

// parseEvent returns the sequence number and stamp of one event as
// appendEvent writes it (without the blank line).
func parseEvent(ev []byte) (seq int, stamp int64, err error) {
	s := string(ev)
	_, data, ok := strings.Cut(s, "\ndata: ")
	if !ok {
		return 0, 0, fmt.Errorf("event without data: %.40q", s)
	}
	return parseEventData([]byte(strings.TrimSpace(data)))
}

// parseEventData parses the JSON of one event, as an SSE data line or a
// WebSocket message carries it.
func parseEventData(data []byte) (seq int, stamp int64, err error) {
	var v struct {
		Seq int   `json:"seq"`
		T   int64 `json:"t"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return 0, 0, fmt.Errorf("parsing event data: %w", err)
	}
	return v.Seq, v.T, nil
}

// serveUpstream is the child's main: it reads the key line from stdin,
// listens on an ephemeral loopback port, prints "port N" and serves until
// stdin reaches EOF (the benchmark closed it, or died).
func serveUpstream() int {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadString('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench upstream: error: reading key: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench upstream: error: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: newUpstream(strings.TrimSpace(line)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		_, _ = io.Copy(io.Discard, in)
		_ = srv.Close()
	}()
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "bench upstream: error: %v\n", err)
		return 1
	}
	return 0
}

// upstreamProc is the running fake upstream child.
type upstreamProc struct {
	proc *proc
	url  string // .../v1/responses
	base string // http://127.0.0.1:PORT
}

// startUpstream starts the fake upstream child, which exits when the
// benchmark stops it or when its stdin pipe closes because the benchmark died.
func startUpstream(ctx context.Context, procs *procSet, key, logPath string) (*upstreamProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the benchmark binary: %w", err)
	}
	cmd := exec.Command(self, serveUpstreamArg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := procs.start("upstream", cmd, logPath)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(stdin, key+"\n"); err != nil {
		return nil, fmt.Errorf("sending key to the fake upstream: %w", err)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(10 * time.Second):
		return nil, errors.New("fake upstream: no port within 10s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var port int
	if _, err := fmt.Sscanf(line, "port %d", &port); err != nil {
		return nil, fmt.Errorf("fake upstream: reading port from %q: %w", line, err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &upstreamProc{proc: p, url: base + "/v1/responses", base: base}, nil
}

// stats fetches the per-target counters.
func (u *upstreamProc) stats(ctx context.Context) (map[string]*upstreamCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base+"/stats", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching upstream stats: %w", err)
	}
	defer resp.Body.Close()
	var counts map[string]*upstreamCounts
	if err := json.NewDecoder(resp.Body).Decode(&counts); err != nil {
		return nil, fmt.Errorf("decoding upstream stats: %w", err)
	}
	return counts, nil
}
