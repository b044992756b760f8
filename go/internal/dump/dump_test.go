package dump

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// TestBodyTruncates: past MaxBody, bytes are counted but not stored, and
// the body is marked truncated; what is stored is on disk, not in memory.
func TestBodyTruncates(t *testing.T) {
	d := newDumper(t)
	b := d.Start().Body()
	defer b.Close()
	chunk := strings.Repeat("x", 1<<20)
	for range MaxBody/len(chunk) + 2 {
		if n, err := b.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write: got %d, %v, want %d, nil", n, err, len(chunk))
		}
	}
	if b.Size() != MaxBody || !b.truncated || b.n+int(b.filed) != MaxBody || b.n > chunkSize {
		t.Errorf("got %d bytes kept, %d in memory (truncated %v), want %d, at most %d, and truncated", b.Size(), b.n, b.truncated, MaxBody, chunkSize)
	}
}

func TestExchangeFiles(t *testing.T) {
	dir := filepath.Join(realTempDir(t), "dumps")
	var logged []string
	d, err := New(dir, func(format string, args ...any) { logged = append(logged, format) })
	if err != nil {
		t.Fatal(err)
	}
	ex := d.Start()
	req, resp := ex.Body(), ex.Body()
	req.Write([]byte(`{"model":"m"}`))
	resp.Write([]byte("data: x\n\n"))
	ex.Request("POST", "https://api.example/v1/responses", []httpsyntax.Field{
		{Name: "Authorization", Value: "Bearer secret"},
		{Name: "Cookie", Value: "a=b"},
		{Name: "Content-Type", Value: "application/json"},
	}, req, false)
	ex.Response(200, []httpsyntax.Field{
		{Name: "Set-Cookie", Value: "c=d"},
		{Name: "Proxy-Authorization", Value: "Basic x"},
	}, resp, true)
	if len(logged) != 0 {
		t.Errorf("got logged failures %q, want none", logged)
	}

	// Modes mean nothing on Windows: os.Stat reports 0o777 for any directory
	// and 0o666 for any writable file (found under wine, issue 13).
	windows := runtime.GOOS == "windows"
	if fi, err := os.Stat(dir); !windows && (err != nil || fi.Mode().Perm() != 0o700) {
		t.Errorf("dump dir: got %v %v, want mode 0700", fi.Mode().Perm(), err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "000001-*"))
	if len(files) != 2 {
		t.Fatalf("got files %q, want a request and a response", files)
	}
	for _, f := range files {
		if fi, _ := os.Stat(f); !windows && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: got mode %v, want 0600", f, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(f)
		for _, secret := range []string{"secret", "a=b", "c=d", "Basic x"} {
			if strings.Contains(string(data), secret) {
				t.Errorf("%s holds %q:\n%s", f, secret, data)
			}
		}
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		switch {
		case strings.HasSuffix(f, "-request.json"):
			if body, ok := v["body"].(map[string]any); !ok || body["model"] != "m" {
				t.Errorf("request body: got %v, want the JSON object", v["body"])
			}
		case strings.HasSuffix(f, "-response.json"):
			if v["body"] != "data: x\n\n" || v["aborted"] != true || v["status"] != float64(200) {
				t.Errorf("response: got %v", v)
			}
		}
	}
}

func TestWriteExclusiveRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "000001-1-request.json")
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	if f, err := createExclusive(link); err == nil {
		f.Close()
		t.Errorf("createExclusive through a planted symlink: got nil error, want one")
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("symlink target was created: %v", err)
	}
}

// TestHeadersOrderAndRedaction: fields are listed as given, names in their
// case and duplicates apart, and credentials are redacted whatever the case
// of their names (RFC 9110, 5.1).
func TestHeadersOrderAndRedaction(t *testing.T) {
	in := []httpsyntax.Field{
		{Name: "x-codex-turn-metadata", Value: "{}"},
		{Name: "authorization", Value: "Bearer secret"},
		{Name: "Content-Type", Value: "application/json"},
		{Name: "COOKIE", Value: "a=b"},
		{Name: "set-cookie", Value: "c=d"},
		{Name: "Set-Cookie", Value: "e=f"},
		{Name: "PROXY-AUTHORIZATION", Value: "Basic x"},
		{Name: "Accept", Value: "text/event-stream"},
		{Name: "accept", Value: "application/json"},
	}
	want := []header{
		{Name: "x-codex-turn-metadata", Value: "{}"},
		{Name: "authorization", Value: redacted},
		{Name: "Content-Type", Value: "application/json"},
		{Name: "COOKIE", Value: redacted},
		{Name: "set-cookie", Value: redacted},
		{Name: "Set-Cookie", Value: redacted},
		{Name: "PROXY-AUTHORIZATION", Value: redacted},
		{Name: "Accept", Value: "text/event-stream"},
		{Name: "accept", Value: "application/json"},
	}
	if got := headers(in); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := headers(nil); got == nil || len(got) != 0 {
		t.Errorf("got %#v for no fields, want an empty list (JSON [], not null)", got)
	}

	// And so in the file, in that order.
	d := newDumper(t)
	d.Start().Request("POST", "https://api.example/v1/responses", in, nil, false)
	files, _ := filepath.Glob(filepath.Join(d.dir, "000001-*-request.json"))
	if len(files) != 1 {
		t.Fatalf("got files %q, want one request file", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Headers []header }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	if !slices.Equal(file.Headers, want) {
		t.Errorf("got headers %q in the file, want %q", file.Headers, want)
	}
}

// newDumper is a Dumper in a new directory that fails t on any failure it
// reports.
func newDumper(t *testing.T) *Dumper {
	t.Helper()
	d, err := New(realTempDir(t), func(format string, args ...any) { t.Errorf(format, args...) })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// realTempDir is t.TempDir with its symbolic links resolved (macOS's is
// under /var, a link to /private/var), as New takes no link in a path.
func realTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
