// Package dump writes each forwarded exchange to --dump-dir as a pair of
// JSON files, NNNNNN-<unix ms>-request.json and NNNNNN-<unix ms>-response.json,
// in the reference proxy's format.
//
// Dumps never hold the API key: the proxy injects it only while writing to
// the upstream connection, so it is in no header map handed to this package,
// and credential headers are redacted here as well.
package dump

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

const redacted = "[REDACTED]"

// credentialHeaders are never written to a dump.
var credentialHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Set-Cookie":          true,
}

// Dumper numbers exchanges and writes their files.
type Dumper struct {
	dir string
	seq atomic.Uint64
	// logf reports a failed write; dumping never fails a request.
	logf func(format string, args ...any)
}

// New creates dir and its missing parents (mode 0700) and returns a Dumper
// writing into it. It refuses a dir with a symbolic link in its path, and an
// existing dir that another user owns or that is group- or world-writable
// (issue 15): whoever controls the link or the directory would choose where
// the exchanges go, or read and replace them.
func New(dir string, logf func(format string, args ...any)) (*Dumper, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dump directory: %w", err)
	}
	// Before MkdirAll, which would follow a link; after it, for a link
	// planted meanwhile.
	if err := noSymlink(abs); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("creating dump directory: %w", err)
	}
	if err := noSymlink(abs); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return nil, fmt.Errorf("dump directory: %w", err)
	}
	if err := checkOwner(abs, fi); err != nil {
		return nil, err
	}
	return &Dumper{dir: abs, logf: logf}, nil
}

// noSymlink refuses abs when an existing component of it is a symbolic
// link.
func noSymlink(abs string) error {
	p := filepath.VolumeName(abs) + string(filepath.Separator)
	for _, part := range strings.Split(abs[len(p):], string(filepath.Separator)) {
		if part == "" {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dump directory: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("dump directory: %s is a symbolic link; give the path it points to", p)
		}
	}
	return nil
}

// Exchange collects one request and its response.
type Exchange struct {
	d      *Dumper
	prefix string
}

// Start begins exchange number n+1.
func (d *Dumper) Start() *Exchange {
	n := d.seq.Add(1)
	return &Exchange{d: d, prefix: fmt.Sprintf("%06d-%d", n, time.Now().UnixMilli())}
}

type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Request writes the request file, and closes body; a nil body is empty.
// aborted marks a body that was not read to its end: it failed, or the
// exchange ended first. The proxy calls it once the whole body has been
// passed upstream, so the disk never delays a byte of the request.
func (e *Exchange) Request(method, url string, h []httpsyntax.Field, body *Body, aborted bool) {
	e.write("request", struct {
		Method  string   `json:"method"`
		URL     string   `json:"url"`
		Headers []header `json:"headers"`
	}{method, url, headers(h)}, body, aborted)
}

// Response writes the response file, and closes body; aborted marks a
// stream that ended with an error rather than cleanly. The proxy calls it
// after the last byte has been flushed to the client and before it ends the
// response, so the file is complete by the time a streamed response is.
func (e *Exchange) Response(status int, h []httpsyntax.Field, body *Body, aborted bool) {
	e.write("response", struct {
		Status  int      `json:"status"`
		Headers []header `json:"headers"`
	}{status, headers(h)}, body, aborted)
}

// write writes a dump file: the fields of head, then "body", then
// "body_truncated" and "aborted" when they are true, as json.MarshalIndent
// writes the reference's struct, streaming the body from where it is stored.
func (e *Exchange) write(kind string, head any, body *Body, aborted bool) {
	if body == nil {
		body = e.Body()
	}
	defer body.Close()
	start, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		e.d.logf("dump: encoding %s: %v", kind, err)
		return
	}
	path := filepath.Join(e.d.dir, e.prefix+"-"+kind+".json")
	f, err := createExclusive(path)
	if err != nil {
		e.d.logf("dump: %v", err)
		return
	}
	w := writers.Get().(*bufio.Writer)
	defer writers.Put(w)
	w.Reset(f)
	w.Write(start[:len(start)-len("\n}")])
	w.WriteString(",\n  \"body\": ")
	err = body.writeIndented(w)
	if body.truncated {
		w.WriteString(",\n  \"body_truncated\": true")
	}
	if aborted {
		w.WriteString(",\n  \"aborted\": true")
	}
	w.WriteString("\n}\n")
	err = errors.Join(err, w.Flush(), f.Close())
	if err != nil {
		e.d.logf("dump: writing dump file %q: %v", filepath.Base(path), err)
	}
}

// createExclusive creates path with mode 0600, refusing to reuse or follow
// an existing file, so another user cannot plant a file or link to be
// written.
func createExclusive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating dump file: %w", err)
	}
	return f, nil
}

// headers lists fields in their order with credentials redacted.
func headers(fields []httpsyntax.Field) []header {
	out := make([]header, 0, len(fields))
	for _, f := range fields {
		v := f.Value
		if credentialHeaders[http.CanonicalHeaderKey(f.Name)] {
			v = redacted
		}
		out = append(out, header{Name: f.Name, Value: v})
	}
	return out
}
