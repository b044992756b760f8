package dump

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// oldResponse is the response file as the dump wrote it when it held the
// body whole and used json.MarshalIndent: the oracle for the streamed one.
type oldResponse struct {
	Status        int      `json:"status"`
	Headers       []header `json:"headers"`
	Body          any      `json:"body"`
	BodyTruncated bool     `json:"body_truncated,omitempty"`
	Aborted       bool     `json:"aborted,omitempty"`
}

// oldFile is the response file as the old dump wrote it, with the body as
// bodyValue has it.
func oldFile(body []byte, truncated, aborted bool) []byte {
	data, err := json.MarshalIndent(oldResponse{200, []header{{"Content-Type", "text/x"}}, bodyValue(body), truncated, aborted}, "", "  ")
	if err != nil {
		panic(err) // bodyValue leaves no JSON the file cannot nest
	}
	return append(data, '\n')
}

// bodyValue is the body as the old dump wrote it, JSON when it is JSON and a
// string otherwise, except for the one change: JSON that indenting would
// grow by more than MaxBody is a string (tooDeep).
func bodyValue(body []byte) any {
	if json.Valid(body) && !tooDeep(body) {
		return json.RawMessage(body)
	}
	return string(body)
}

// tooDeep reports whether indenting the JSON text body grows it by more than
// MaxBody. Nested 10,000 deep, a body cannot be indented in a file at all,
// which nests it one deeper than encoding/json allows (the old dump wrote no
// file); that takes hundreds of MB of indentation anyway.
func tooDeep(body []byte) bool {
	v, err := json.MarshalIndent(struct {
		B json.RawMessage
	}{body}, "", "  ")
	return err != nil || len(v)-len("{\n  \"B\": \n}")-len(body) > MaxBody
}

// dumpOnce writes body to a response file in pieces of the sizes cuts gives
// and returns the file.
func dumpOnce(t *testing.T, d *Dumper, body []byte, cuts *rand.Rand, aborted bool) []byte {
	t.Helper()
	ex := d.Start()
	b := ex.Body()
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 1+cuts.IntN(max(1, len(body)/3)))
		b.Write(rest[:n])
		rest = rest[n:]
	}
	ex.Response(200, []httpsyntax.Field{{Name: "Content-Type", Value: "text/x"}}, b, aborted)
	files, _ := filepath.Glob(filepath.Join(d.dir, ex.prefix+"-response.json"))
	if len(files) != 1 {
		t.Fatalf("got files %q, want one", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(files[0])
	return data
}

// withoutMemory runs f with every chunk taken, so Bodies write straight to
// their files.
func withoutMemory(f func()) {
	for range cap(memory) {
		memory <- struct{}{}
	}
	defer func() {
		for range cap(memory) {
			<-memory
		}
	}()
	f()
}

var dumpSeeds = []string{
	``, ` `, `{}`, `[]`, `{"model":"m","input":[{"role":"user","content":"hi"}],"stream":true}`,
	` { "a" : [ 1 , -0.5e+3 , true , false , null , "x" , { } , [ ] ] } `,
	`{"html":"<a href=\"x\">&amp;</a>","sep":"` + "\u2028\u2029 \xe2\x80 \xe2\x80\xa7" + `"}`,
	`"\u00e9\/\b\f\n\r\t\\"`, `"é 😀 ` + "\xff\xfe" + `"`, `0`, `-0`, `12`, `1.5`, `1e9`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
	`tru`, `truex`, `nul`, `[1,]`, `{"a"}`, `{"a":}`, `{,}`, `[1 2]`, `{"a":1}}`, `"` + "\x01" + `"`, `"\x"`, `"\u12"`,
	"data: {\"type\":\"response.created\"}\n\n", "event: x\ndata: <&>\n\n", "\xe2\x80\xa8\xe2\x80", "😀"[:3],
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":[`, 40) + strings.Repeat("]}", 40), strings.Repeat("[", 2000) + strings.Repeat("]", 2000),
	strings.Repeat("[", 2900) + strings.Repeat("]", 2900),
}

// TestBodyFileAsBefore: the streamed file is byte for byte what the dump
// wrote when it held bodies whole, JSON or not, whatever the pieces, held in
// memory, spilled from it or written straight to the file.
func TestBodyFileAsBefore(t *testing.T) {
	d := newDumper(t)
	cuts := rand.New(rand.NewPCG(1, 2))
	big := []string{bigJSON(200 << 10), bigJSON(200 << 10)[1:], strings.Repeat("data: é<\xe2\x80\xa8>\n\n", 20000)}
	for i, body := range append(dumpSeeds, big...) {
		want := oldFile([]byte(body), false, i%2 == 1)
		if got := dumpOnce(t, d, []byte(body), cuts, i%2 == 1); !bytes.Equal(got, want) {
			t.Errorf("body %d (%.40q): got\n%.400s\nwant\n%.400s", i, body, got, want)
		}
		withoutMemory(func() {
			if got := dumpOnce(t, d, []byte(body), cuts, i%2 == 1); !bytes.Equal(got, want) {
				t.Errorf("body %d (%.40q) without memory: got\n%.400s\nwant\n%.400s", i, body, got, want)
			}
		})
	}
	if len(memory) != 0 {
		t.Errorf("got %d chunks held after every body was closed, want 0", len(memory))
	}
}

// FuzzBodyIndent: the body as the file writes it, in memory and in pieces,
// is what json.MarshalIndent wrote of it.
func FuzzBodyIndent(f *testing.F) {
	for _, s := range dumpSeeds {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		want, err := json.MarshalIndent(struct {
			Body any `json:"body"`
		}{bodyValue(body)}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		b := &Body{d: &Dumper{logf: t.Errorf}}
		defer b.Close()
		cuts := rand.New(rand.NewPCG(seed, 0))
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 1+cuts.IntN(len(rest)))
			b.Write(rest[:n])
			rest = rest[n:]
		}
		var got bytes.Buffer
		got.WriteString("{\n  \"body\": ")
		w := bufio.NewWriter(&got)
		b.writeIndented(w)
		w.Flush()
		got.WriteString("\n}")
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("got\n%s\nwant\n%s", got.Bytes(), want)
		}
	})
}

// bigJSON is a JSON text of about n bytes, with strings to escape.
func bigJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"input":[`)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"i":%d,"text":"line <%d> & \u2028 é\n"},`, i, i)
	}
	b.WriteString(`{}]}`)
	return b.String()
}

// TestEmbed: a message embedded in another body is JSON as it is (the file's
// indenter compacts it later), else what json.Marshal makes of it: bytes in
// base64, anything else as a string.
func TestEmbed(t *testing.T) {
	d := newDumper(t)
	marshal := func(v any) string { data, _ := json.Marshal(v); return string(data) }
	for _, tc := range []struct {
		in     string
		binary bool
		want   string
	}{
		{`{"type": "x"}`, false, `{"type": "x"}`},
		{"not <json> \xff", false, marshal("not <json> \xff")},
		{"\x00\x01\xff", true, marshal([]byte("\x00\x01\xff"))},
		{bigJSON(100 << 10), false, bigJSON(100 << 10)},
		{strings.Repeat("\x07", 100<<10), true, marshal([]byte(strings.Repeat("\x07", 100<<10)))},
	} {
		ex := d.Start()
		b, dst := ex.Body(), ex.Body()
		b.Write([]byte(tc.in))
		b.Embed(dst, tc.binary)
		var got bytes.Buffer
		dst.each(&got)
		dst.Close()
		if got.String() != tc.want {
			t.Errorf("%.30q: got %.100s, want %.100s", tc.in, got.Bytes(), tc.want)
		}
	}
}
