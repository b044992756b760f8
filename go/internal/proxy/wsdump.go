package proxy

import (
	"encoding/binary"
	"fmt"
	"io"
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

// wsTypes names the opcodes of RFC 6455, 5.2, in a dump.
var wsTypes = map[byte]string{1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

// wsRecorder writes the messages of both directions, in the order they were
// relayed, to the body of the socket's response file as they complete:
// {"websocket_messages":[{"from","type","data"},...],"messages_dropped":N}.
// Past dump.MaxBody bytes of payload, messages are counted, not kept.
type wsRecorder struct {
	ex      *dump.Exchange
	mu      sync.Mutex
	body    *dump.Body
	size    int64
	count   int
	dropped int
}

func newRecorder(ex *dump.Exchange) *wsRecorder {
	r := &wsRecorder{ex: ex, body: ex.Body()}
	io.WriteString(r.body, `{"websocket_messages":[`)
	return r
}

// add records a message whose payload is in data, and closes data.
func (r *wsRecorder) add(from string, opcode byte, data *dump.Body) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.size+data.Size() > dump.MaxBody {
		r.dropped++
		data.Close()
		return
	}
	r.size += data.Size()
	if r.count++; r.count > 1 {
		io.WriteString(r.body, ",")
	}
	io.WriteString(r.body, `{"from":"`+from+`","type":"`+wsTypes[opcode]+`"`)
	if data.Size() > 0 {
		io.WriteString(r.body, `,"data":`)
		data.Embed(r.body, opcode == 2) // binary in base64, as json.Marshal writes []byte
	} else {
		data.Close()
	}
	io.WriteString(r.body, "}")
}

// finish ends the record and returns it as the response file's body.
func (r *wsRecorder) finish() *dump.Body {
	r.mu.Lock()
	defer r.mu.Unlock()
	io.WriteString(r.body, "]")
	if r.dropped > 0 {
		fmt.Fprintf(r.body, `,"messages_dropped":%d`, r.dropped)
	}
	io.WriteString(r.body, "}")
	return r.body
}

// frameTap parses the frames of one direction (RFC 6455, 5.2) from the
// bytes relayed, which it only reads, and records each whole message. It
// holds a frame's header and passes its payload, unmasked, on to a
// dump.Body as it comes, so a message of any size costs the dump's bounded
// memory only (issue 15, finding 4).
type frameTap struct {
	rec     *wsRecorder
	from    string
	head    [14]byte // the longest header: 2, 8 of length and 4 of key
	nhead   int
	left    uint64 // payload bytes of the current frame still to come
	key     [4]byte
	masked  bool
	pos     int // of the next payload byte in the frame, for the key
	fin     bool
	opcode  byte       // of the current frame
	control *dump.Body // the current frame's payload, for a control frame
	msgType byte       // of the message being reassembled
	message *dump.Body
}

// Write never fails: the dump must not change the relay.
func (t *frameTap) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if t.nhead >= 0 {
			p = t.header(p)
			continue
		}
		m := int(min(t.left, uint64(len(p))))
		t.payload(p[:m])
		p, t.left = p[m:], t.left-uint64(m)
		if t.left == 0 {
			t.frameEnd()
		}
	}
	return n, nil
}

// header takes header bytes from p and returns the rest; once the header is
// whole, nhead is -1 and the payload follows.
func (t *frameTap) header(p []byte) []byte {
	for len(p) > 0 {
		t.head[t.nhead] = p[0]
		t.nhead++
		p = p[1:]
		if t.nhead < 2 {
			continue
		}
		want := 2
		switch t.head[1] & 0x7f {
		case 126:
			want += 2
		case 127:
			want += 8
		}
		if t.head[1]&0x80 != 0 {
			want += 4
		}
		if t.nhead == want {
			t.start(want)
			return p
		}
	}
	return p
}

// start begins the frame whose header is the first size bytes of head.
func (t *frameTap) start(size int) {
	h := t.head[:size]
	t.fin, t.opcode, t.masked = h[0]&0x80 != 0, h[0]&0x0f, h[1]&0x80 != 0
	t.left, h = uint64(h[1]&0x7f), h[2:]
	switch t.left {
	case 126:
		t.left, h = uint64(binary.BigEndian.Uint16(h)), h[2:]
	case 127:
		t.left, h = binary.BigEndian.Uint64(h), h[8:]
	}
	if t.masked {
		copy(t.key[:], h)
	}
	t.nhead, t.pos = -1, 0
	switch {
	case t.opcode >= 8: // control frames are never fragmented
		t.control = t.rec.ex.Body()
	case t.opcode != 0 || t.message == nil: // a continuation with no start is one
		t.msgType, t.message = t.opcode, t.rec.ex.Body()
	}
	if t.left == 0 {
		t.frameEnd()
	}
}

// payload passes payload bytes on, unmasked.
func (t *frameTap) payload(p []byte) {
	dst := t.message
	if t.opcode >= 8 {
		dst = t.control
	}
	if !t.masked {
		dst.Write(p)
		return
	}
	var buf [512]byte
	for len(p) > 0 {
		m := copy(buf[:], p)
		for i := range m {
			buf[i] ^= t.key[(t.pos+i)%4]
		}
		dst.Write(buf[:m])
		t.pos += m
		p = p[m:]
	}
}

func (t *frameTap) frameEnd() {
	t.nhead = 0
	switch {
	case t.opcode >= 8:
		t.rec.add(t.from, t.opcode, t.control)
		t.control = nil
	case t.fin:
		t.rec.add(t.from, t.msgType, t.message)
		t.message = nil
	}
}

// close releases a message the connection ended in the middle of.
func (t *frameTap) close() {
	for _, b := range []*dump.Body{t.control, t.message} {
		if b != nil {
			b.Close()
		}
	}
}
