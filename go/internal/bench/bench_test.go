package main

import (
	"io"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

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
