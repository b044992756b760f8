package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the fake upstream, as the
// benchmark's own binary does, so that run can be tested whole.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveUpstreamArg {
		os.Exit(serveUpstream())
	}
	os.Exit(m.Run())
}

// TestPhase: --phase measures that phase of the rounds and nothing else (a
// smoke run against the fake upstream alone), and refuses an unknown name.
func TestPhase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.json")
	cfg, err := parseFlags([]string{"--smoke", "--proxy-bin", "off", "--phase", "websocket", "--json", path})
	if err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), cfg); code != 0 {
		t.Fatalf("run exited %d", code)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Targets []result `json:"targets"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Targets) != 1 || out.Targets[0].Name != "direct" {
		t.Fatalf("got targets %+v, want direct alone", out.Targets)
	}
	m := out.Targets[0].Metrics
	for _, k := range []string{mWSDelayP50, mWSTurnP50, mPostTurnP50} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in %v", k, m)
		}
	}
	for _, k := range []string{mFirstEventP50, mJSONP50, mThroughput, mBodyTime, mStreamsServed} {
		if _, ok := m[k]; ok {
			t.Errorf("got %s with --phase websocket", k)
		}
	}

	cfg.phase = "nope"
	if code := run(context.Background(), cfg); code != 1 {
		t.Errorf("--phase nope: run exited %d, want 1", code)
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5},
		{0.99, 10},
		{0.1, 1},
		{0, 1},
	}
	for _, tc := range tests {
		if got := percentile(d, tc.q); got != tc.want {
			t.Errorf("percentile(%v): got %d, want %d", tc.q, got, tc.want)
		}
	}
	if got, want := spread([]float64{90, 100, 110}), 0.2; got != want {
		t.Errorf("spread: got %v, want %v", got, want)
	}
}

func TestParseTargetFlag(t *testing.T) {
	tests := []struct {
		name    string
		flag    string
		want    []string
		wantErr string
	}{
		{name: "server info", flag: "ref=codex responses-api-proxy --server-info {server_info} --upstream-url {upstream}",
			want: []string{"codex", "responses-api-proxy", "--server-info", "{server_info}", "--upstream-url", "{upstream}"}},
		{name: "port", flag: "other=p --port {port}", want: []string{"p", "--port", "{port}"}},
		{name: "no readiness", flag: "x=p --upstream {upstream}", wantErr: "needs {server_info} or {port}"},
		{name: "reserved", flag: "nginx=p {port}", wantErr: "reserved"},
		{name: "no name", flag: "p {port}", wantErr: "want name=command"},
		{name: "empty", flag: "x=  ", wantErr: "empty command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, argv, err := parseTargetFlag(tc.flag)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(argv, tc.want) {
				t.Errorf("got %q, %v, want %q", argv, err, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	got := expand([]string{"p", "--port={port}", "{server_info}", "{upstream}"}, 8080, "/tmp/a b.json", "http://127.0.0.1:1/v1/responses")
	want := []string{"p", "--port=8080", "/tmp/a b.json", "http://127.0.0.1:1/v1/responses"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPatternReader(t *testing.T) {
	const size = 1<<20 + 3
	n, err := io.Copy(io.Discard, &patternReader{remaining: size})
	if n != size || err != nil {
		t.Errorf("got %d, %v, want %d, nil", n, err, size)
	}
}

// TestNginxConfig checks the generated config with nginx -t when nginx is
// installed, so that the template cannot rot unnoticed.
func TestNginxConfig(t *testing.T) {
	dir := t.TempDir()
	c := nginxConfig{Dir: dir, Port: 18080, Workers: 2, UpstreamPort: 18081, UpstreamPath: "/v1/responses", Key: testKey}
	conf, err := c.render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"listen 127.0.0.1:18080;",
		"server 127.0.0.1:18081;",
		"keepalive 64;",
		`proxy_set_header Authorization "Bearer ` + testKey + `";`,
		"proxy_set_header Connection $connection_upgrade;",
		"proxy_set_header Upgrade $http_upgrade;",
		"proxy_buffering off;",
		"proxy_request_buffering off;",
		"proxy_http_version 1.1;",
		"worker_processes 2;",
		"access_log off;",
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("got config without %q", want)
		}
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed: config not checked by nginx -t")
	}
	path, err := c.write()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path).CombinedOutput(); err != nil {
		t.Errorf("nginx -t: %v: %s", err, out)
	}
}
