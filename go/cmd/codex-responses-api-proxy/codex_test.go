package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

// codexHeaders are the headers Codex CLI 0.169 sends with its
// POST /v1/responses (lowercase, as reqwest writes them), without any
// Authorization of its own.
var codexHeaders = [][2]string{
	{"content-type", "application/json"},
	{"accept", "text/event-stream"},
	{"originator", "codex_exec"},
	{"user-agent", "codex_exec/0.169.0 (Debian 12.0.0; x86_64) unknown (codex_exec; 0.169.0)"},
	{"version", "0.169.0"},
	{"session-id", "0199a7c2-5d1e-7b42-9f0e-3c8d4a6b2e10"},
	{"thread-id", "0199a7c2-5d1e-7b42-9f0e-3c8d4a6b2e10"},
	{"x-client-request-id", "0199a7c2-61f3-7a80-b2d4-95e1c07f4a3b"},
	{"x-codex-window-id", "0199a7c2-5d1e-7b42-9f0e-3c8d4a6b2e10:0"},
	{"x-codex-turn-metadata", `{"turn_id":"0199a7c2-61f3-7a80-b2d4-95e1c07f4a3b","sandbox":"workspace-write","approval_policy":"never","cwd":"/work/main"}`},
	{"x-codex-beta-features", "unified_exec,apply_patch_freeform"},
}

// codexAnswer is the text the fake upstream streams back, one word per delta.
const codexAnswer = "The handler copies each upstream read to the client and flushes it at once, " +
	"so every server-sent event reaches Codex as soon as the API sends it; the dump writer " +
	"captures a copy in memory and writes its files in the background after the stream ends."

func TestCodexRequest(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("testdata/codex_request.json")
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Stream  bool     `json:"stream"`
		Store   bool     `json:"store"`
		Include []string `json:"include"`
	}
	if err := json.Unmarshal(body, &parsed); err != nil || !parsed.Stream || parsed.Store || len(body) < 50<<10 {
		t.Fatalf("testdata/codex_request.json: want a ~55 KB streaming request, got %d bytes, %+v, %v", len(body), parsed, err)
	}
	words := strings.Fields(codexAnswer)

	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			seen := make(chan seenRequest, 1)
			up := newUpstream(t, scheme == "https", func(w http.ResponseWriter, r *http.Request) {
				seen <- capture(r)
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("X-Request-Id", "req_codex")
				w.Header().Set("Openai-Processing-Ms", "42")
				w.WriteHeader(http.StatusOK)
				seq := 0
				send := func(name string, fields map[string]any) {
					fields["type"] = name
					fields["sequence_number"] = seq
					seq++
					data, _ := json.Marshal(fields)
					sendEvent(w, name, string(data))
				}
				resp := map[string]any{"id": "resp_e2e", "object": "response", "status": "in_progress", "model": "gpt-5.1-codex"}
				send("response.created", map[string]any{"response": resp})
				send("response.in_progress", map[string]any{"response": resp})
				send("response.output_item.added", map[string]any{"output_index": 0, "item": map[string]any{"id": "msg_e2e", "type": "message", "role": "assistant", "content": []any{}}})
				for i, word := range words {
					if i > 0 {
						word = " " + word
					}
					send("response.output_text.delta", map[string]any{"item_id": "msg_e2e", "output_index": 0, "content_index": 0, "delta": word})
				}
				send("response.output_text.done", map[string]any{"item_id": "msg_e2e", "output_index": 0, "content_index": 0, "text": codexAnswer})
				resp["status"] = "completed"
				resp["usage"] = map[string]any{"input_tokens": 13000, "output_tokens": len(words), "total_tokens": 13000 + len(words)}
				send("response.completed", map[string]any{"response": resp})
			})
			p := startProxy(t, options{up: up})

			var raw strings.Builder
			raw.WriteString("POST /v1/responses HTTP/1.1\r\nhost: {addr}\r\n")
			for _, h := range codexHeaders {
				fmt.Fprintf(&raw, "%s: %s\r\n", h[0], h[1])
			}
			fmt.Fprintf(&raw, "content-length: %d\r\n\r\n", len(body))
			raw.Write(body)

			c := p.dial()
			defer c.Close()
			if _, err := io.WriteString(c, strings.ReplaceAll(raw.String(), "{addr}", p.addr)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if got := resp.Header.Get("X-Request-Id"); got != "req_codex" {
				t.Errorf("X-Request-Id: got %q, want %q", got, "req_codex")
			}

			br := bufio.NewReader(resp.Body)
			var names []string
			var text strings.Builder
			for i := 0; ; i++ {
				ev, err := readEventTimeout(br, ioTimeout)
				if err == io.EOF && ev.name == "" {
					break
				}
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				var data struct {
					Type           string `json:"type"`
					SequenceNumber int    `json:"sequence_number"`
					Delta          string `json:"delta"`
				}
				if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
					t.Fatalf("event %d data %q: %v", i, ev.data, err)
				}
				if data.Type != ev.name || data.SequenceNumber != i {
					t.Errorf("event %d: got %s #%d, want type %s #%d", i, data.Type, data.SequenceNumber, ev.name, i)
				}
				names = append(names, ev.name)
				if ev.name == "response.output_text.delta" {
					text.WriteString(data.Delta)
				}
			}
			wantNames := []string{"response.created", "response.in_progress", "response.output_item.added"}
			for range words {
				wantNames = append(wantNames, "response.output_text.delta")
			}
			wantNames = append(wantNames, "response.output_text.done", "response.completed")
			if !slices.Equal(names, wantNames) {
				t.Errorf("events: got %q, want %q", names, wantNames)
			}
			if text.String() != codexAnswer {
				t.Errorf("reassembled text: got %q, want %q", text.String(), codexAnswer)
			}

			s := receive(t, seen)
			if !bytes.Equal(s.body, body) {
				t.Errorf("upstream body: got %d bytes, want the %d bytes of testdata/codex_request.json, identical", len(s.body), len(body))
			}
			for _, h := range codexHeaders {
				if got := s.header.Values(h[0]); !slices.Equal(got, []string{h[1]}) {
					t.Errorf("upstream %s: got %q, want %q", h[0], got, h[1])
				}
			}
			if got := s.header["Authorization"]; !slices.Equal(got, []string{"Bearer " + p.key}) {
				t.Errorf("upstream Authorization: got %d values, want exactly one with the key", len(got))
			}
			if s.requestURI != upstreamPath || s.host != up.host() {
				t.Errorf("upstream target: got %q on %q, want %q on %q", s.requestURI, s.host, upstreamPath, up.host())
			}
		})
	}
}
