package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/dump"
	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// frameBytes builds one frame, masked with key if it is not nil.
func frameBytes(fin bool, opcode byte, payload string, key []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	mask := byte(0)
	if key != nil {
		mask = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, mask|byte(n))
	case n < 1<<16:
		b = append(b, mask|126, byte(n>>8), byte(n))
	default:
		b = append(b, mask|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	p := []byte(payload)
	if key != nil {
		b = append(b, key...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(b, p...)
}

// TestFrameTap: messages are reassembled from fragments, unmasked, in order,
// with control frames between fragments, however the bytes are split.
func TestFrameTap(t *testing.T) {
	key := []byte{1, 2, 3, 4}
	var stream []byte
	stream = append(stream, frameBytes(false, 1, `{"type":`, key)...)
	stream = append(stream, frameBytes(true, 9, "hi", key)...)
	stream = append(stream, frameBytes(true, 0, `"x"}`, key)...)
	stream = append(stream, frameBytes(true, 1, strings.Repeat("z", 70000), nil)...)
	stream = append(stream, frameBytes(true, 2, "\x00\x01", nil)...)
	stream = append(stream, frameBytes(true, 8, "\x03\xe8", key)...)
	dir := t.TempDir()
	d, err := dump.New(dir, t.Errorf)
	if err != nil {
		t.Fatal(err)
	}
	for n, step := range []int{1, 7, len(stream)} {
		ex := d.Start()
		rec := newRecorder(ex)
		tap := &frameTap{rec: rec, from: "client"}
		for i := 0; i < len(stream); i += step {
			tap.Write(stream[i:min(i+step, len(stream))])
		}
		tap.close()
		ex.Response(101, nil, rec.finish(), false)
		var got []string
		for _, m := range readMessages(t, dir, n+1) {
			var data bytes.Buffer
			json.Compact(&data, m.Data)
			got = append(got, m.Type+" "+data.String()[:min(data.Len(), 20)])
		}
		want := []string{`ping "hi"`, `text {"type":"x"}`, `text "zzzzzzzzzzzzzzzzzzz`, `binary "AAE="`, `close "\u0003\ufffd"`}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("writes of %d bytes: got %q, want %q", step, got, want)
		}
	}
}

// readMessages reads the messages of the response file of exchange n.
func readMessages(t *testing.T, dir string, n int) []struct {
	From, Type string
	Data       json.RawMessage
} {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%06d-*-response.json", n)))
	if len(files) != 1 {
		t.Fatalf("got files %q, want one response file", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Body struct {
			Messages []struct {
				From, Type string
				Data       json.RawMessage
			} `json:"websocket_messages"`
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v\n%s", files[0], err, data)
	}
	return f.Body.Messages
}

func TestWithoutDeflate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"permessage-deflate; client_max_window_bits", ""},
		{"x-other, permessage-deflate", "x-other"},
		{"PerMessage-Deflate;server_no_context_takeover, x-a; p=1", "x-a; p=1"},
	}
	for _, tc := range tests {
		got := withoutDeflate([]httpsyntax.Field{{Name: "A", Value: "1"}, {Name: "sec-websocket-extensions", Value: tc.in}})
		v, n := httpsyntax.Lookup(got, "Sec-WebSocket-Extensions")
		if v != tc.want || (tc.want == "") != (n == 0) || got[0].Value != "1" {
			t.Errorf("%q: got %q (%d fields), want %q", tc.in, v, n, tc.want)
		}
	}
}
