// Command bench measures the proxy side by side with a direct connection
// to a fake upstream, nginx configured as a key-injecting reverse proxy,
// and any other proxy command, in interleaved rounds (issue 5).
//
//	cd go && go run ./internal/bench [--smoke] [--json FILE] [--proxy-bin PATH|off]
//	    [--nginx auto|off|PATH] [--target name='cmd {port} {server_info} {upstream}']...
//
// It prints a table, failures and PASS/FAIL lines for the targets of
// issue 5 on stdout, progress on stderr, writes JSON with --json, and
// exits 1 if a request to direct, proxy or nginx was not answered
// correctly (another --target's failures are reported, not fatal), 2 if
// a performance target was missed (never in --smoke).
// The key it uses is a random fake one, generated per run, which never
// leaves this process except on the children's stdin and in the nginx
// config inside the run's private temporary directory.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

const proxyPackage = "github.com/openai/codex-responses-api-proxy/go/cmd/codex-responses-api-proxy"

// config holds the sizes of one run.
type config struct {
	smoke        bool
	rounds       int
	sse          sseParams // latency streams, sseStreams per round and target
	sseStreams   int
	ws           wsParams
	jsonRequests int // sequential small POSTs per round and target
	jsonSlices   int // each round's POSTs go in this many slices, targets alternating
	conns        int
	duration     time.Duration // throughput window per round and target
	thrSlices    int           // the window goes in this many slices, targets alternating
	streams      int
	slow         sseParams // each of the concurrent streams
	bodyBytes    int64
	startups     int
	settle       time.Duration // wait before reading idle RSS
	proxyBin     string
	nginx        string
	jsonPath     string
	commands     []commandTarget
	phase        string // only this phase of the rounds; "" for the whole run
}

type commandTarget struct {
	name string
	argv []string
}

func fullConfig() config {
	return config{
		rounds:     5,
		sse:        sseParams{events: 10, size: 200, interval: 20 * time.Millisecond},
		sseStreams: 10,
		ws: wsParams{timed: sseParams{events: 10, size: 200, interval: 20 * time.Millisecond}, turns: 10,
			quick: sseParams{events: 10, size: 200}, quickTurns: 100},
		jsonRequests: 1000,
		jsonSlices:   10,
		conns:        64,
		duration:     2 * time.Second,
		thrSlices:    4,
		streams:      1000,
		slow:         sseParams{events: 20, size: 200, interval: 100 * time.Millisecond},
		bodyBytes:    64 << 20,
		startups:     10,
		settle:       500 * time.Millisecond,
	}
}

func smokeConfig() config {
	return config{
		smoke:      true,
		rounds:     1,
		sse:        sseParams{events: 3, size: 200, interval: 5 * time.Millisecond},
		sseStreams: 2,
		ws: wsParams{timed: sseParams{events: 3, size: 200, interval: 5 * time.Millisecond}, turns: 2,
			quick: sseParams{events: 3, size: 200}, quickTurns: 5},
		jsonRequests: 20,
		jsonSlices:   2,
		conns:        64,
		duration:     300 * time.Millisecond,
		thrSlices:    1,
		streams:      20,
		slow:         sseParams{events: 3, size: 200, interval: 20 * time.Millisecond},
		bodyBytes:    1 << 20,
		startups:     2,
		settle:       50 * time.Millisecond,
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveUpstreamArg {
		os.Exit(serveUpstream())
	}
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg)
	stop()
	os.Exit(code)
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	smoke := fs.Bool("smoke", false, "tiny sizes, one round, no nginx unless --nginx PATH: checks every code path in seconds")
	rounds := fs.Int("rounds", 0, "interleaved rounds (default 5, smoke 1)")
	duration := fs.Duration("duration", 0, "throughput window per round and target (default 2s)")
	streams := fs.Int("streams", 0, "concurrent slow streams (default 1000)")
	bodyMiB := fs.Int("body-mib", 0, "large request body in MiB (default 64)")
	jsonPath := fs.String("json", "", "write results as JSON to this file")
	proxyBin := fs.String("proxy-bin", "", "proxy binary to measure, or off (default: go build "+proxyPackage+")")
	nginx := fs.String("nginx", "auto", "nginx binary, auto (from PATH if present; off in smoke) or off")
	phase := fs.String("phase", "", "run only this phase of the rounds (sse, websocket, json, throughput or body), without the concurrent streams and startups: to compare builds side by side (--target) on one figure")
	var commands []commandTarget
	fs.Func("target", "another proxy, name='cmd args' with {port}, {server_info}, {upstream}; reads the key on stdin (repeatable)", func(s string) error {
		name, argv, err := parseTargetFlag(s)
		if err == nil {
			commands = append(commands, commandTarget{name: name, argv: argv})
		}
		return err
	})
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := fullConfig()
	if *smoke {
		cfg = smokeConfig()
	}
	if *rounds > 0 {
		cfg.rounds = *rounds
	}
	if *duration > 0 {
		cfg.duration = *duration
	}
	if *streams > 0 {
		cfg.streams = *streams
	}
	if *bodyMiB > 0 {
		cfg.bodyBytes = int64(*bodyMiB) << 20
	}
	cfg.jsonPath, cfg.proxyBin, cfg.nginx, cfg.commands, cfg.phase = *jsonPath, *proxyBin, *nginx, commands, *phase
	if cfg.nginx == "auto" && cfg.smoke {
		cfg.nginx = "off"
	}
	return cfg, nil
}

// bench is one run.
type bench struct {
	cfg     config
	dir     string
	key     string
	procs   *procSet
	up      *upstreamProc
	targets []*target // every target, including those that failed to start
	active  []*target // those measured
	load    [2]string // loadavg at start and end
}

func run(ctx context.Context, cfg config) int {
	b := &bench{cfg: cfg, procs: &procSet{}, load: [2]string{loadavg(), ""}}
	defer b.procs.stopAll()
	if cfg.phase != "" && !slices.ContainsFunc(b.roundPhases(ctx), func(ph roundPhase) bool { return ph.name == cfg.phase }) {
		fmt.Fprintf(os.Stderr, "bench: error: --phase %q: no such phase\n", cfg.phase)
		return 1
	}
	if err := raiseNoFile(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: warning: %v\n", err)
	}
	dir, err := os.MkdirTemp("", "codex-proxy-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b.dir = dir
	if err := b.setup(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
		return 1
	}
	b.measure(ctx)
	b.collectUpstreamStats(ctx)
	b.load[1] = loadavg()
	b.procs.stopAll()
	for _, t := range b.targets {
		t.result.finish()
	}
	return b.report(ctx)
}

// setup starts the fake upstream and every target; a target that fails
// to start is recorded as failed and left out of the measurements.
func (b *bench) setup(ctx context.Context) error {
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	b.key = "sk-bench-" + hex.EncodeToString(secret)
	up, err := startUpstream(ctx, b.procs, b.key, filepath.Join(b.dir, "upstream.log"))
	if err != nil {
		return err
	}
	b.up = up
	b.add(&target{name: "direct", url: up.url, auth: "Bearer " + b.key}, nil)
	if b.cfg.proxyBin != "off" {
		bin, err := b.proxyBinary(ctx)
		argv := []string{bin, "--server-info", phServerInfo, "--upstream-url", phUpstream}
		b.add(&target{name: "proxy", argv: argv}, err)
	}
	if bin, err := b.nginxBinary(); bin != "" || err != nil {
		t := &target{name: "nginx"}
		if err == nil {
			err = b.startNginx(ctx, t, bin)
		}
		b.add(t, err)
	}
	for _, c := range b.cfg.commands {
		b.add(&target{name: c.name, argv: c.argv}, nil)
	}
	for _, t := range b.active {
		if t.argv == nil {
			continue
		}
		p, port, _, err := launch(ctx, b.procs, b.dir, t, b.key, up.url, 0)
		if err != nil {
			b.drop(t, fmt.Errorf("starting: %w", err))
			continue
		}
		t.proc, t.url = p, fmt.Sprintf("http://127.0.0.1:%d/v1/responses", port)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	time.Sleep(b.cfg.settle)
	for _, t := range b.active {
		if t.proc == nil {
			continue
		}
		if rss, _, err := memory(procTree(t.proc.pid())); err == nil {
			t.result.Metrics[mIdleRSS] = mib(rss)
		}
	}
	return nil
}

// add registers a target, measured unless err is set.
func (b *bench) add(t *target, err error) {
	t.result = newResult(t.name)
	b.targets = append(b.targets, t)
	b.active = append(b.active, t)
	if err != nil {
		b.drop(t, err)
	}
}

// drop records why a target cannot be measured and stops measuring it.
func (b *bench) drop(t *target, err error) {
	t.result.fail("setup", err)
	fmt.Fprintf(os.Stderr, "bench: %s: %v\n", t.name, err)
	b.active = slices.DeleteFunc(b.active, func(a *target) bool { return a == t })
}

// proxyBinary returns --proxy-bin, or builds the proxy into the run's
// temporary directory (needs the working directory inside the module).
func (b *bench) proxyBinary(ctx context.Context) (string, error) {
	if b.cfg.proxyBin != "" {
		return b.cfg.proxyBin, nil
	}
	bin := filepath.Join(b.dir, "codex-responses-api-proxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, proxyPackage)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the proxy (run from go/ or pass --proxy-bin): %w", err)
	}
	return bin, nil
}

// nginxBinary resolves --nginx: "" when nginx is not to be measured.
func (b *bench) nginxBinary() (string, error) {
	switch b.cfg.nginx {
	case "off":
		return "", nil
	case "auto":
		bin, _ := exec.LookPath("nginx")
		return bin, nil
	}
	if _, err := os.Stat(b.cfg.nginx); err != nil {
		return "", fmt.Errorf("--nginx: %w", err)
	}
	return b.cfg.nginx, nil
}

func (b *bench) startNginx(ctx context.Context, t *target, bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	var upstreamPort int
	if _, err := fmt.Sscanf(strings.TrimPrefix(b.up.base, "http://127.0.0.1:"), "%d", &upstreamPort); err != nil {
		return fmt.Errorf("parsing upstream port: %w", err)
	}
	p, err := startNginx(ctx, b.procs, b.dir, bin, nginxConfig{
		Port:         port,
		Workers:      runtime.GOMAXPROCS(0),
		UpstreamPort: upstreamPort,
		UpstreamPath: "/v1/responses",
		Key:          b.key,
	})
	if err != nil {
		return err
	}
	t.proc, t.url = p, fmt.Sprintf("http://127.0.0.1:%d/v1/responses", port)
	return nil
}

// roundPhase is one measurement of the rounds. It runs once per round and
// target, or in slices with the targets alternating, so that a slow drift of
// the machine's load falls on every target alike; end, if set, closes the
// round for a target.
type roundPhase struct {
	name   string
	slices int
	run    func(t *target)
	end    func(t *target)
}

func (b *bench) roundPhases(ctx context.Context) []roundPhase {
	cfg := b.cfg
	return []roundPhase{
		{name: "sse", run: func(t *target) { measureSSE(ctx, t, cfg.sse, cfg.sseStreams) }},
		{name: "websocket", run: func(t *target) { measureWebSocket(ctx, t, cfg.ws) }},
		{name: "json", slices: cfg.jsonSlices,
			run: func(t *target) {
				lat := measureJSON(ctx, t, cfg.jsonRequests/cfg.jsonSlices)
				t.result.jsonLatency = append(t.result.jsonLatency, lat...)
				t.roundJSON = append(t.roundJSON, lat...)
			},
			end: func(t *target) {
				if len(t.roundJSON) > 0 {
					t.result.Rounds[mJSONP50] = append(t.result.Rounds[mJSONP50], ms(percentile(t.roundJSON, 0.5)))
				}
				t.roundJSON = nil
			}},
		{name: "throughput", slices: cfg.thrSlices, run: func(t *target) {
			rps, cpu := measureThroughput(ctx, t, cfg.conns, cfg.duration/time.Duration(cfg.thrSlices))
			t.result.Rounds[mThroughput] = append(t.result.Rounds[mThroughput], rps)
			if cpu > 0 {
				t.result.Rounds[mCPUPerRequest] = append(t.result.Rounds[mCPUPerRequest], float64(cpu)/float64(time.Microsecond))
			}
		}},
		{name: "body", run: func(t *target) {
			d, growth, err := measureBody(ctx, t, cfg.bodyBytes)
			if err != nil {
				t.result.fail("body", err)
				return
			}
			t.result.Rounds[mBodyTime] = append(t.result.Rounds[mBodyTime], ms(d))
			if growth >= 0 {
				t.result.Rounds[mBodyGrowth] = append(t.result.Rounds[mBodyGrowth], mib(growth))
			}
		}},
	}
}

// measure runs the interleaved rounds, then the concurrent streams and
// the startup runs, rotating the order of targets each time; with --phase,
// only that phase of the rounds.
func (b *bench) measure(ctx context.Context) {
	cfg := b.cfg
	phases := b.roundPhases(ctx)
	if cfg.phase != "" {
		phases = slices.DeleteFunc(phases, func(ph roundPhase) bool { return ph.name != cfg.phase })
	}
	for r := range cfg.rounds {
		fmt.Fprintf(os.Stderr, "bench: round %d/%d\n", r+1, cfg.rounds)
		for _, ph := range phases {
			for s := range max(ph.slices, 1) {
				for _, t := range b.order(r + s) {
					if ctx.Err() != nil {
						return
					}
					ph.run(t)
				}
			}
			for _, t := range b.active {
				if ph.end != nil {
					ph.end(t)
				}
			}
		}
	}
	if cfg.phase != "" {
		return
	}
	fmt.Fprintf(os.Stderr, "bench: %d concurrent streams\n", cfg.streams)
	for _, t := range b.order(cfg.rounds) {
		if ctx.Err() != nil {
			return
		}
		served, peak := measureStreams(ctx, t, cfg.streams, cfg.slow)
		t.result.Metrics[mStreamsServed] = float64(served)
		if peak >= 0 {
			t.result.Metrics[mStreamsPeak] = mib(peak)
		}
		if served != cfg.streams {
			t.result.fail("streams", fmt.Errorf("%d of %d streams served", served, cfg.streams))
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d startups per target\n", cfg.startups)
	for i := range cfg.startups {
		for _, t := range b.order(i) {
			if t.proc == nil || t.argv == nil || !strings.Contains(strings.Join(t.argv, " "), phServerInfo) || ctx.Err() != nil {
				continue
			}
			p, _, ready, err := launch(ctx, b.procs, b.dir, t, b.key, b.up.url, i+1)
			if err != nil {
				t.result.fail("startup", err)
				continue
			}
			p.stop()
			t.result.startup = append(t.result.startup, ready)
		}
	}
}

// order returns the measured targets rotated by r, so that no target is
// always measured first or right after another.
func (b *bench) order(r int) []*target {
	n := len(b.active)
	out := make([]*target, 0, n)
	for i := range n {
		out = append(out, b.active[(i+r)%n])
	}
	return out
}

// collectUpstreamStats turns what the fake upstream saw into failures:
// a request without exactly our key, or with a wrong path or body.
func (b *bench) collectUpstreamStats(ctx context.Context) {
	counts, err := b.up.stats(ctx)
	if err != nil {
		b.targets[0].result.fail("upstream", err)
		return
	}
	for _, t := range b.targets {
		c := counts[t.name]
		if c == nil {
			continue
		}
		if c.AuthFailures > 0 {
			t.result.fail("authorization", fmt.Errorf("%d of %d requests reached the upstream without exactly one Bearer <key>", c.AuthFailures, c.Requests))
		}
		if c.BadRequests > 0 {
			t.result.fail("upstream", fmt.Errorf("%d of %d requests had a wrong method, path, body or parameters", c.BadRequests, c.Requests))
		}
	}
}

// loadavg returns the first three fields of /proc/loadavg, or "n/a".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "n/a"
}
