package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

type dumpHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type dumpFile struct {
	Method  string          `json:"method"`
	URL     string          `json:"url"`
	Status  int             `json:"status"`
	Headers []dumpHeader    `json:"headers"`
	Body    json.RawMessage `json:"body"`
	Aborted bool            `json:"aborted"`
}

var dumpName = regexp.MustCompile(`^(\d{6})-\d+-(request|response)\.json$`)

func TestDumpDir(t *testing.T) {
	t.Parallel()
	clientSecrets := []string{"client-" + randToken(t, 16), "proxy-" + randToken(t, 16), "cookie-" + randToken(t, 16)}
	// The client may see the upstream's cookie; the dump may not.
	upstreamCookie := "setcookie-" + randToken(t, 16)
	events := []string{
		"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
		"event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n",
	}
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Set-Cookie", "session="+upstreamCookie)
		w.WriteHeader(http.StatusOK)
		for _, ev := range events {
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	dir := filepath.Join(t.TempDir(), "dumps", "nested")
	p := startProxy(t, options{up: up, dumpDir: dir, secrets: clientSecrets})

	bodies := []string{`{"model":"gpt-5","input":[{"role":"user","content":"hé"}],"stream":true}`, "not json at all"}
	for _, body := range bodies {
		resp, got := p.post(http.Header{
			"Content-Type":        {"application/json"},
			"Authorization":       {"Bearer " + clientSecrets[0]},
			"Proxy-Authorization": {"Basic " + clientSecrets[1]},
			"Cookie":              {"c=" + clientSecrets[2]},
			"X-Visible":           {"yes"},
		}, []byte(body))
		if resp.StatusCode != http.StatusOK || string(got) != strings.Join(events, "") {
			t.Fatalf("got %d %q, want 200 with the events", resp.StatusCode, got)
		}
	}

	var names []string
	if !waitFor(exitTimeout, func() bool {
		entries, err := os.ReadDir(dir)
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return err == nil && len(names) >= 4
	}) {
		t.Fatalf("dump files: got %q, want 4", names)
	}
	if len(names) != 4 {
		t.Fatalf("dump files: got %q, want 4", names)
	}
	// Modes mean nothing on Windows.
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("dump dir mode: got %v (%v), want 0700", fi.Mode().Perm(), err)
		}
	}

	slices.Sort(names)
	wantKinds := []struct{ seq, kind string }{{"000001", "request"}, {"000001", "response"}, {"000002", "request"}, {"000002", "response"}}
	for i, name := range names {
		m := dumpName.FindStringSubmatch(name)
		if m == nil || m[1] != wantKinds[i].seq || m[2] != wantKinds[i].kind {
			t.Errorf("dump file %d: got %q, want %s-<ms>-%s.json", i, name, wantKinds[i].seq, wantKinds[i].kind)
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); runtime.GOOS != "windows" && (err != nil || fi.Mode().Perm() != 0o600) {
			t.Errorf("%s mode: got %v (%v), want 0600", name, fi.Mode().Perm(), err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(upstreamCookie)) {
			t.Errorf("%s holds the upstream's Set-Cookie value", name)
		}
		var f dumpFile
		if err := json.Unmarshal(data, &f); err != nil {
			t.Errorf("%s is not JSON: %v", name, err)
			continue
		}
		for _, h := range f.Headers {
			switch http.CanonicalHeaderKey(h.Name) {
			case "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie":
				if h.Value != "[REDACTED]" {
					t.Errorf("%s: %s not redacted", name, h.Name)
				}
			}
		}
		body := bodies[i/2]
		if m[2] == "request" {
			if f.Method != http.MethodPost || f.URL != up.url {
				t.Errorf("%s: got %s %s, want POST %s", name, f.Method, f.URL, up.url)
			}
			if !hasHeader(f.Headers, "X-Visible", "yes") {
				t.Errorf("%s: X-Visible missing from %v", name, f.Headers)
			}
			checkDumpBody(t, name, f.Body, body)
		} else {
			if f.Status != http.StatusOK || f.Aborted {
				t.Errorf("%s: got status %d aborted %v, want 200 complete", name, f.Status, f.Aborted)
			}
			if !hasHeader(f.Headers, "Set-Cookie", "[REDACTED]") {
				t.Errorf("%s: Set-Cookie missing or not redacted in %v", name, f.Headers)
			}
			checkDumpBody(t, name, f.Body, strings.Join(events, ""))
		}
	}
}

func hasHeader(hs []dumpHeader, name, value string) bool {
	for _, h := range hs {
		if http.CanonicalHeaderKey(h.Name) == name && h.Value == value {
			return true
		}
	}
	return false
}

// checkDumpBody: a JSON body is dumped as JSON, anything else as a string.
func checkDumpBody(t *testing.T, name string, got json.RawMessage, want string) {
	t.Helper()
	if json.Valid([]byte(want)) {
		var g, w any
		json.Unmarshal(got, &g)
		json.Unmarshal([]byte(want), &w)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s body: got %s, want JSON %s", name, got, want)
		}
		return
	}
	var s string
	if err := json.Unmarshal(got, &s); err != nil || s != want {
		t.Errorf("%s body: got %s, want the string %q", name, got, want)
	}
}
