package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// How a metric compares to a reference target in the table.
type comparison int

const (
	cmpNone  comparison = iota
	cmpDiff             // value minus reference: added latency
	cmpRatio            // value divided by reference
)

// row is one line of the table.
type row struct {
	key, label, unit string
	decimals         int
	vsDirect         comparison
	vsNginx          comparison
}

func (b *bench) rows() []row {
	c := b.cfg
	return []row{
		{mFirstEventP50, "SSE first event p50", "ms", 3, cmpDiff, cmpDiff},
		{mFirstEventP99, "SSE first event p99", "ms", 3, cmpDiff, cmpDiff},
		{mEventDelayP50, "SSE per-event delay p50", "ms", 3, cmpDiff, cmpDiff},
		{mEventDelayP99, "SSE per-event delay p99", "ms", 3, cmpDiff, cmpDiff},
		{mWSDelayP50, "WebSocket per-message delay p50", "ms", 3, cmpDiff, cmpDiff},
		{mWSDelayP99, "WebSocket per-message delay p99", "ms", 3, cmpDiff, cmpDiff},
		{mWSTurnP50, fmt.Sprintf("WebSocket turn p50, %d events", c.ws.quick.events), "ms", 3, cmpDiff, cmpDiff},
		{mPostTurnP50, fmt.Sprintf("POST SSE turn p50, %d events", c.ws.quick.events), "ms", 3, cmpDiff, cmpDiff},
		{mJSONP50, "small JSON POST p50", "ms", 3, cmpDiff, cmpDiff},
		{mJSONP99, "small JSON POST p99", "ms", 3, cmpDiff, cmpDiff},
		{mThroughput, fmt.Sprintf("throughput, %d conns", c.conns), "req/s", 0, cmpRatio, cmpRatio},
		{mCPUPerRequest, "CPU per request", "µs", 1, cmpNone, cmpRatio},
		{mStreamsServed, fmt.Sprintf("%d streams served", c.streams), "", 0, cmpNone, cmpNone},
		{mStreamsPeak, fmt.Sprintf("peak RSS, %d streams", c.streams), "MiB", 1, cmpNone, cmpRatio},
		{mBodyTime, fmt.Sprintf("%d MiB body time", c.bodyBytes>>20), "ms", 1, cmpRatio, cmpRatio},
		{mBodyGrowth, fmt.Sprintf("%d MiB body RSS growth", c.bodyBytes>>20), "MiB", 1, cmpNone, cmpDiff},
		{mStartupP50, "startup to server-info p50", "ms", 1, cmpNone, cmpNone},
		{mStartupMax, "startup to server-info max", "ms", 1, cmpNone, cmpNone},
		{mIdleRSS, "idle RSS", "MiB", 1, cmpNone, cmpRatio},
	}
}

// cell formats v with its relation to ref: "1.234 (+0.120)", "950 (0.85x)".
func cell(v float64, ok bool, ref float64, refOK bool, r row, cmp comparison) string {
	if !ok {
		return "-"
	}
	s := fmt.Sprintf("%.*f", r.decimals, v)
	if rel := relation(v, ref, refOK, r, cmp); rel != "" {
		s += " (" + rel + ")"
	}
	return s
}

// relation formats v against ref as a difference or a ratio, or "".
func relation(v, ref float64, refOK bool, r row, cmp comparison) string {
	switch {
	case !refOK:
		return ""
	case cmp == cmpDiff:
		return fmt.Sprintf("%+.*f", r.decimals, v-ref)
	case cmp == cmpRatio && ref != 0:
		return fmt.Sprintf("%.2fx", v/ref)
	}
	return ""
}

// check is one pass/fail line for an issue-5 target.
type check struct {
	Name   string `json:"name"`
	Result string `json:"result"` // PASS, FAIL or SKIP
	Detail string `json:"detail"`
}

// checks judges the proxy against the targets of issue 5; nil when the
// proxy was not measured.
func (b *bench) checks() []check {
	proxy, direct, nginx := b.result("proxy"), b.result("direct"), b.result("nginx")
	if proxy == nil || direct == nil {
		return nil
	}
	get := func(r *result, k string) (float64, bool) {
		if r == nil {
			return 0, false
		}
		v, ok := r.Metrics[k]
		return v, ok
	}
	var out []check
	add := func(name string, ok bool, pass bool, format string, args ...any) {
		c := check{Name: name, Result: "SKIP", Detail: "not measured"}
		if ok {
			c.Result, c.Detail = "FAIL", fmt.Sprintf(format, args...)
			if pass {
				c.Result = "PASS"
			}
		}
		out = append(out, c)
	}
	added := func(k string) (float64, bool) {
		p, ok1 := get(proxy, k)
		d, ok2 := get(direct, k)
		return p - d, ok1 && ok2
	}
	fe, ok := added(mFirstEventP50)
	add("SSE first event: added p50 <= 1 ms over direct", ok, fe <= 1, "added %.3f ms", fe)
	ed, ok := added(mEventDelayP50)
	add("SSE per-event delay: added p50 <= 1 ms over direct", ok, ed <= 1, "added %.3f ms", ed)
	pj, ok1 := added(mJSONP50)
	nj, ok2 := func() (float64, bool) {
		n, ok := get(nginx, mJSONP50)
		d, _ := get(direct, mJSONP50)
		return n - d, ok
	}()
	add("small JSON POST: added p50 <= 1.5x nginx's added", ok1 && ok2, pj <= 1.5*nj, "proxy added %.3f ms, nginx added %.3f ms", pj, nj)
	pw, ok1 := added(mWSDelayP50)
	nw, ok2 := func() (float64, bool) {
		n, ok := get(nginx, mWSDelayP50)
		d, _ := get(direct, mWSDelayP50)
		return n - d, ok
	}()
	add("WebSocket per-message delay: added p50 <= nginx's added", ok1 && ok2, pw <= nw, "proxy added %.3f ms, nginx added %.3f ms", pw, nw)
	pt, ok1 := get(proxy, mThroughput)
	nt, ok2 := get(nginx, mThroughput)
	add(fmt.Sprintf("throughput (%d conns) >= 0.8x nginx's", b.cfg.conns), ok1 && ok2 && nt > 0, pt >= 0.8*nt, "%.0f vs %.0f req/s (%.2fx)", pt, nt, pt/nt)
	pc, ok1 := get(proxy, mCPUPerRequest)
	nc, ok2 := get(nginx, mCPUPerRequest)
	add("CPU per request <= 2x nginx's", ok1 && ok2 && nc > 0, pc <= 2*nc, "%.1f vs %.1f µs (%.2fx)", pc, nc, pc/nc)
	served, ok1 := get(proxy, mStreamsServed)
	peak, ok2 := get(proxy, mStreamsPeak)
	add(fmt.Sprintf("%d concurrent streams: all served, peak RSS <= 64 MiB", b.cfg.streams), ok1 && ok2,
		int(served) == b.cfg.streams && peak <= 64, "%d served, peak %.1f MiB", int(served), peak)
	g, ok := get(proxy, mBodyGrowth)
	add(fmt.Sprintf("%d MiB body: RSS growth <= 8 MiB", b.cfg.bodyBytes>>20), ok, g <= 8, "growth %.1f MiB", g)
	s, ok := get(proxy, mStartupP50)
	add("startup to server-info written: p50 <= 20 ms", ok, s <= 20, "p50 %.1f ms", s)
	return out
}

func (b *bench) result(name string) *result {
	for _, t := range b.targets {
		if t.name == name && len(t.result.Metrics) > 0 {
			return t.result
		}
	}
	return nil
}

// report prints the table, the noise line, failures and checks, writes
// the JSON file, and returns the exit code.
func (b *bench) report(ctx context.Context) int {
	b.printTable(os.Stdout)
	noise := b.noise()
	fmt.Println(noise)
	code := 0
	for _, t := range b.targets {
		for _, f := range t.result.Failures {
			fmt.Printf("FAILURE %s: %s\n", t.name, f)
			if t.argv == nil || t.name == "proxy" {
				code = 1 // ours, or the bench itself; another proxy's faults are findings
			}
		}
	}
	if ctx.Err() != nil {
		fmt.Println("FAILURE: interrupted")
		code = 1
	}
	var checks []check
	if !b.cfg.smoke {
		checks = b.checks()
		for _, c := range checks {
			fmt.Printf("%s %s: %s\n", c.Result, c.Name, c.Detail)
			if c.Result == "FAIL" && code == 0 {
				code = 2
			}
		}
	}
	if b.cfg.jsonPath != "" {
		if err := b.writeJSON(noise, checks); err != nil {
			fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
			return 1
		}
	}
	return code
}

// printTable writes the target x metric table, aligned and in Markdown.
func (b *bench) printTable(w io.Writer) {
	direct, nginx := b.result("direct"), b.result("nginx")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := []string{"metric"}
	for _, t := range b.targets {
		header = append(header, t.name)
	}
	hasNginx := nginx != nil && b.result("proxy") != nil
	if hasNginx {
		header = append(header, "proxy vs nginx")
	}
	mdRow := func(cells []string) { fmt.Fprintln(tw, "| "+strings.Join(cells, "\t| ")+"\t|") }
	mdRow(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	mdRow(sep)
	for _, r := range b.rows() {
		label := r.label
		if r.unit != "" {
			label += " (" + r.unit + ")"
		}
		line := []string{label}
		dv, dok := lookup(direct, r.key)
		for _, t := range b.targets {
			v, ok := t.result.Metrics[r.key]
			if t.name == "direct" {
				line = append(line, cell(v, ok, 0, false, r, cmpNone))
				continue
			}
			line = append(line, cell(v, ok, dv, dok, r, r.vsDirect))
		}
		if hasNginx {
			pv, pok := lookup(b.result("proxy"), r.key)
			nv, nok := lookup(nginx, r.key)
			s := "-"
			if rel := relation(pv, nv, pok && nok, r, r.vsNginx); rel != "" {
				s = rel
			}
			line = append(line, s)
		}
		mdRow(line)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\n(x) ratio and (+/-) difference to direct; CPU and RSS of the proxy's process tree (nginx: master + workers)")
}

func lookup(r *result, k string) (float64, bool) {
	if r == nil {
		return 0, false
	}
	v, ok := r.Metrics[k]
	return v, ok
}

// noise states how busy and how steady the machine was.
func (b *bench) noise() string {
	s := fmt.Sprintf("noise: %d CPUs (GOMAXPROCS %d), loadavg %s at start, %s at end", runtime.NumCPU(), runtime.GOMAXPROCS(0), b.load[0], b.load[1])
	if d := b.result("direct"); d != nil && b.cfg.rounds > 1 {
		s += fmt.Sprintf(", spread (max-min)/median over %d rounds: direct JSON p50 %.0f%%, over %d throughput slices: direct %.0f%%",
			b.cfg.rounds, 100*spread(d.Rounds[mJSONP50]), len(d.Rounds[mThroughput]), 100*spread(d.Rounds[mThroughput]))
		if p := b.result("proxy"); p != nil {
			s += fmt.Sprintf(", proxy throughput %.0f%%", 100*spread(p.Rounds[mThroughput]))
		}
	}
	return s
}

func (b *bench) writeJSON(noise string, checks []check) error {
	c := b.cfg
	out := map[string]any{
		"time":  time.Now().UTC().Format(time.RFC3339),
		"smoke": c.smoke,
		"machine": map[string]any{
			"cpus": runtime.NumCPU(), "gomaxprocs": runtime.GOMAXPROCS(0), "go": runtime.Version(),
			"os": runtime.GOOS + "/" + runtime.GOARCH, "loadavg_start": b.load[0], "loadavg_end": b.load[1],
		},
		"config": map[string]any{
			"rounds": c.rounds, "sse_events": c.sse.events, "sse_event_bytes": c.sse.size,
			"sse_interval_ms": ms(c.sse.interval), "sse_streams_per_round": c.sseStreams,
			"json_requests_per_round": c.jsonRequests, "json_slices_per_round": c.jsonSlices, "throughput_slices_per_round": c.thrSlices, "throughput_conns": c.conns,
			"throughput_seconds": c.duration.Seconds(), "streams": c.streams,
			"stream_events": c.slow.events, "stream_interval_ms": ms(c.slow.interval),
			"body_bytes": c.bodyBytes, "startups": c.startups, "phase": c.phase,
		},
		"noise":   noise,
		"targets": b.resultList(),
		"checks":  checks,
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(c.jsonPath, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

func (b *bench) resultList() []*result {
	out := make([]*result, len(b.targets))
	for i, t := range b.targets {
		out[i] = t.result
	}
	return out
}
