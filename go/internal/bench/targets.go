package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// target is one thing the client talks to: the fake upstream itself
// ("direct"), our proxy, nginx, or another proxy command.
type target struct {
	name   string
	url    string
	auth   string   // Authorization the client sends itself; only "direct"
	argv   []string // command template; nil for direct and nginx
	proc   *proc    // nil for direct
	result *result
	// roundJSON collects a round's JSON latencies across its slices.
	roundJSON []time.Duration
}

// Placeholders of a command template (--target).
const (
	phPort       = "{port}"
	phServerInfo = "{server_info}"
	phUpstream   = "{upstream}"
)

var targetNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// parseTargetFlag parses name='cmd args' as given to --target; the
// command is split on white space (no shell, so the PID is the proxy's)
// and reads the key on stdin.
func parseTargetFlag(s string) (name string, argv []string, err error) {
	name, cmd, ok := strings.Cut(s, "=")
	if !ok || !targetNameRE.MatchString(name) {
		return "", nil, fmt.Errorf("--target %q: want name=command with a lowercase name", s)
	}
	if name == "direct" || name == "proxy" || name == "nginx" {
		return "", nil, fmt.Errorf("--target %q: name %q is reserved", s, name)
	}
	argv = strings.Fields(cmd)
	if len(argv) == 0 {
		return "", nil, fmt.Errorf("--target %q: empty command", s)
	}
	if !strings.Contains(cmd, phServerInfo) && !strings.Contains(cmd, phPort) {
		return "", nil, fmt.Errorf("--target %q: %w", s, errNoReadiness)
	}
	return name, argv, nil
}

// expand fills the placeholders of a command template.
func expand(argv []string, port int, serverInfo, upstreamURL string) []string {
	r := strings.NewReplacer(phPort, strconv.Itoa(port), phServerInfo, serverInfo, phUpstream, upstreamURL)
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = r.Replace(a)
	}
	return out
}

// launch starts one instance of a command target with the key on stdin
// and waits until it is ready: its server-info file holds a port, or the
// {port} it was given accepts connections. It returns the time from
// process start to readiness.
func launch(ctx context.Context, procs *procSet, dir string, t *target, key, upstreamURL string, seq int) (*proc, int, time.Duration, error) {
	joined := strings.Join(t.argv, " ")
	info := filepath.Join(dir, fmt.Sprintf("%s-%d.server-info.json", t.name, seq))
	port := 0
	if strings.Contains(joined, phPort) {
		var err error
		if port, err = freePort(); err != nil {
			return nil, 0, 0, err
		}
	}
	argv := expand(t.argv, port, info, upstreamURL)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(key + "\n")
	p, err := procs.start(t.name, cmd, filepath.Join(dir, t.name+".log"))
	if err != nil {
		return nil, 0, 0, err
	}
	if strings.Contains(joined, phServerInfo) {
		port, err = waitServerInfo(ctx, p, info)
	} else {
		err = waitPort(ctx, p, port)
	}
	ready := time.Since(p.started)
	if err != nil {
		p.stop()
		return nil, 0, 0, err
	}
	return p, port, ready, nil
}

//go:embed nginx.conf.tmpl
var nginxTemplate string

// nginxConfig fills nginx.conf.tmpl.
type nginxConfig struct {
	Dir          string
	Port         int
	Workers      int
	UpstreamPort int
	UpstreamPath string
	Key          string
}

func (c nginxConfig) render() ([]byte, error) {
	tmpl, err := template.New("nginx.conf").Parse(nginxTemplate)
	if err != nil {
		return nil, fmt.Errorf("parsing nginx template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("rendering nginx config: %w", err)
	}
	return b.Bytes(), nil
}

// write renders the config into Dir/nginx.conf, readable by us only.
func (c nginxConfig) write() (string, error) {
	conf, err := c.render()
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, "nginx.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		return "", fmt.Errorf("writing nginx config: %w", err)
	}
	return path, nil
}

// startNginx writes a key-injecting reverse proxy config into dir (the
// fake key has to be in it: nginx has no other way to learn it) and runs
// nginx in the foreground with as many workers as our proxy has threads
// running Go code (GOMAXPROCS), waiting until all workers are up.
func startNginx(ctx context.Context, procs *procSet, dir, bin string, c nginxConfig) (*proc, error) {
	c.Dir = dir
	confPath, err := c.write()
	if err != nil {
		return nil, err
	}
	errorLog := filepath.Join(dir, "nginx-error.log")
	cmd := exec.Command(bin, "-p", dir, "-e", errorLog, "-c", confPath, "-g", "daemon off;")
	p, err := procs.start("nginx", cmd, filepath.Join(dir, "nginx.log"))
	if err != nil {
		return nil, err
	}
	if err := waitPort(ctx, p, c.Port); err != nil {
		b, _ := os.ReadFile(errorLog)
		return nil, fmt.Errorf("%w: %s", err, bytes.TrimSpace(b))
	}
	for deadline := time.Now().Add(5 * time.Second); len(procTree(p.pid())) < 1+c.Workers; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nginx: %d workers not up within 5s", c.Workers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p, nil
}
