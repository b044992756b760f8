package proxy

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"sync"

	"github.com/openai/codex-responses-api-proxy/go/internal/dump"
	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// withoutDeflate drops permessage-deflate from the client's extension offer
// (RFC 7692), so that the messages a dump records are plain; a field left
// with no offer is dropped.
func withoutDeflate(fields []httpsyntax.Field) []httpsyntax.Field {
	out := fields[:0]
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Sec-WebSocket-Extensions") {
			var kept []string
			for offer := range strings.SplitSeq(f.Value, ",") {
				name, _, _ := strings.Cut(offer, ";")
				if !strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
					kept = append(kept, strings.TrimSpace(offer))
				}
			}
			if len(kept) == 0 {
				continue
			}
			f.Value = strings.Join(kept, ", ")
		}
		out = append(out, f)
	}
	return out
}

// wsMessage is one message of a dump: text messages as JSON when they parse.
type wsMessage struct {
	From string `json:"from"` // "client" or "upstream"
	Type string `json:"type"` // text, binary, close, ping or pong
	Data any    `json:"data,omitempty"`
}

// wsRecorder collects the messages of both directions in the order they
// were relayed, up to dump.MaxBody bytes of payload.
type wsRecorder struct {
	mu       sync.Mutex
	messages []wsMessage
	size     int
	dropped  int
}

// body renders the messages as the dump's response body.
func (r *wsRecorder) body() *dump.Body {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := new(dump.Body)
	data, _ := json.Marshal(struct {
		Messages []wsMessage `json:"websocket_messages"`
		Dropped  int         `json:"messages_dropped,omitempty"`
	}{r.messages, r.dropped})
	b.Write(data)
	return b
}

func (r *wsRecorder) add(from string, opcode byte, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.size+len(payload) > dump.MaxBody {
		r.dropped++
		return
	}
	r.size += len(payload)
	m := wsMessage{From: from, Type: map[byte]string{1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}[opcode]}
	switch {
	case opcode == 1 && json.Valid(payload):
		m.Data = json.RawMessage(append([]byte(nil), payload...))
	case opcode == 2:
		m.Data = payload // base64 in JSON
	case len(payload) > 0:
		m.Data = string(payload)
	}
	r.messages = append(r.messages, m)
}

// frameTap parses the frames of one direction (RFC 6455, 5.2) from the
// bytes relayed, which it only reads, and records each whole message.
type frameTap struct {
	rec     *wsRecorder
	from    string
	buf     []byte // bytes of an incomplete frame
	opcode  byte   // of the message being reassembled
	message []byte
	broken  bool // a frame the parser cannot follow: stop recording
}

// Write never fails: the dump must not change the relay.
func (t *frameTap) Write(p []byte) (int, error) {
	if t.broken {
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	for t.frame() {
	}
	return len(p), nil
}

// frame consumes one complete frame from buf, if there is one.
func (t *frameTap) frame() bool {
	b := t.buf
	if len(b) < 2 {
		return false
	}
	fin, opcode, masked := b[0]&0x80 != 0, b[0]&0x0f, b[1]&0x80 != 0
	n, i := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return false
		}
		n, i = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return false
		}
		n, i = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n > dump.MaxBody+1<<20 {
		t.broken, t.buf = true, nil
		return false
	}
	var key []byte
	if masked {
		if len(b) < i+4 {
			return false
		}
		key, i = b[i:i+4], i+4
	}
	if uint64(len(b)-i) < n {
		return false
	}
	payload := b[i : i+int(n)]
	for j := range payload {
		if key != nil {
			payload[j] ^= key[j%4]
		}
	}
	switch {
	case opcode >= 8: // control frames are never fragmented
		t.rec.add(t.from, opcode, payload)
	case opcode != 0:
		t.opcode, t.message = opcode, append(t.message[:0], payload...)
	default:
		t.message = append(t.message, payload...)
	}
	if fin && opcode < 8 {
		t.rec.add(t.from, t.opcode, t.message)
		t.message = nil
	}
	t.buf = append(t.buf[:0], b[i+int(n):]...)
	return true
}
