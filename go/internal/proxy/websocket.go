package proxy

// The Responses API's WebSocket mode (issue 11): GET /v1/responses upgraded
// to a WebSocket (RFC 6455) is relayed to the upstream URL (https is wss,
// http is ws) with the key injected by the upstream client, exactly as a
// POST. After the handshake the proxy copies bytes both ways, each read
// passed on at once; it parses no frame and needs no WebSocket library.

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/openai/codex-responses-api-proxy/go/internal/dump"
	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/rawio"
	"github.com/openai/codex-responses-api-proxy/go/internal/server"
	"github.com/openai/codex-responses-api-proxy/go/internal/upstream"
)

// webSocketGUID is the value RFC 6455, 1.3 appends to the key for the
// accept value.
const webSocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// isWebSocketUpgrade reports whether r is a well-formed opening handshake
// (RFC 6455, 4.1): HTTP/1.1, no body, exactly one "Upgrade: websocket", a
// Connection field listing "upgrade", exactly one "Sec-WebSocket-Version:
// 13" and exactly one Sec-WebSocket-Key that is 16 bytes in base64.
func isWebSocketUpgrade(r *server.Request) bool {
	if r.ProtoMinor != 1 || r.Body != http.NoBody || !httpsyntax.HasToken(r.Fields, "Connection", "upgrade") {
		return false
	}
	if up, n := httpsyntax.Lookup(r.Fields, "Upgrade"); n != 1 || !strings.EqualFold(up, "websocket") {
		return false
	}
	if v, n := httpsyntax.Lookup(r.Fields, "Sec-WebSocket-Version"); n != 1 || v != "13" {
		return false
	}
	key, n := httpsyntax.Lookup(r.Fields, "Sec-WebSocket-Key")
	if n != 1 || len(key) != 24 {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(raw) == 16
}

// acceptValue is the Sec-WebSocket-Accept that answers key (RFC 6455, 4.2.2).
func acceptValue(key string) string {
	sum := sha1.Sum([]byte(key + webSocketGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// validSwitch reports whether the upstream's 101 completes the handshake
// for key (RFC 6455, 4.1, the client's checks): Upgrade: websocket, a
// Connection listing upgrade, and the accept value of key.
func validSwitch(fields []httpsyntax.Field, key string) bool {
	up, nUp := httpsyntax.Lookup(fields, "Upgrade")
	accept, nAccept := httpsyntax.Lookup(fields, "Sec-WebSocket-Accept")
	return nUp == 1 && strings.EqualFold(up, "websocket") &&
		httpsyntax.HasToken(fields, "Connection", "upgrade") &&
		nAccept == 1 && accept == acceptValue(key)
}

// webSocket relays one WebSocket: the handshake through the upstream client,
// then the bytes until both sides have closed.
func (h *Handler) webSocket(w *server.Response, r *server.Request, rec *record) {
	w.SetClose() // whatever the answer, the connection carries nothing else
	if len(r.Fields) > h.cfg.MaxHeaders {
		fail(w, rec, http.StatusRequestHeaderFieldsTooLarge, "too many request headers")
		return
	}
	lease, ok := h.acquire(w, rec)
	if !ok {
		return
	}
	key, _ := httpsyntax.Lookup(r.Fields, "Sec-WebSocket-Key")
	fields := outboundFields(r.Fields)
	var ex *dump.Exchange
	if h.cfg.Dumper != nil {
		// Frames are parsed for the dump only: uncompressed, they can be
		// read without inflating (the bytes are relayed unchanged).
		fields = withoutDeflate(fields)
		ex = h.cfg.Dumper.Start()
		ex.Request(r.Method, h.cfg.UpstreamURL, fields, nil, false)
	}
	var resp *upstream.Response
	var up *upstream.Upgraded
	var err error
	if h.cfg.Tokens == nil {
		resp, up, err = h.cfg.Upstream.Upgrade(r.Context(), "websocket", fields)
	} else {
		resp, up, err = h.cfg.Upstream.UpgradeAuth(r.Context(), lease.Line(), "websocket", fields)
		if err == nil && resp.StatusCode == http.StatusUnauthorized {
			lease.Rejected()
		}
	}
	// The token is in the handshake only: an open socket holds no lease.
	lease.Release()
	if err != nil {
		h.upstreamFailed(w, r, rec, &bodyReader{}, err, nil)
		return
	}
	if up == nil {
		// A refusal (401, 426, ...) is the client's to read, as for a POST.
		h.answer(w, resp, rec, ex, nil) // CORS does not apply to WebSockets
		return
	}
	defer up.Close()
	rec.requestID, _ = httpsyntax.Lookup(resp.Fields, "X-Request-Id")
	if !validSwitch(resp.Fields, key) {
		h.cfg.Logf("forwarding to upstream: its 101 does not complete the WebSocket handshake")
		fail(w, rec, http.StatusBadGateway, "upstream request failed")
		return
	}
	var out [32]httpsyntax.Field
	client, err := w.SwitchProtocols("websocket", inboundFields(out[:0], resp.Fields))
	if err != nil {
		h.cfg.Logf("switching protocols: %v", err)
		return
	}
	rec.status = http.StatusSwitchingProtocols
	var taps [2]io.Writer
	var messages *wsRecorder
	if ex != nil {
		messages = newRecorder(ex)
		fromClient, fromUp := &frameTap{rec: messages, from: "client"}, &frameTap{rec: messages, from: "upstream"}
		defer fromClient.close()
		defer fromUp.close()
		taps = [2]io.Writer{fromClient, fromUp}
	}
	rec.sent, rec.bytes = relayBoth(client, up, taps, h.cfg.Logf)
	if ex != nil {
		ex.Response(http.StatusSwitchingProtocols, resp.Fields, messages.finish(), false)
	}
}

// duplex is one end of a relayed connection. It has no Wait (see waiter):
// each direction's goroutine blocks in Read with a pooled buffer, which is
// a buffer held per direction of an open WebSocket, one per Codex session,
// and each message is then one read into it and one write out of it. With
// Wait, a message took a read into the connection's 4 KiB bufio.Reader and
// a copy out of it, and one over 4 KiB a read and a write per 4 KiB.
type duplex interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// relayBoth copies bytes both ways between client and up until each
// direction has ended: a clean end of one side's input is passed on as a
// half-close, and an error in either direction closes both connections, so
// the other direction ends too. It returns the bytes copied to up and to
// client. taps, if set, see the bytes from the client and from up.
func relayBoth(client, up duplex, taps [2]io.Writer, logf func(string, ...any)) (toUp, toClient int64) {
	var wg sync.WaitGroup
	wg.Go(func() { toUp = relayOne(up, client, up, taps[0], "client to upstream", logf) })
	toClient = relayOne(client, up, handOver{client}, taps[1], "upstream to client", logf)
	wg.Wait()
	client.Close()
	up.Close()
	return toUp, toClient
}

// relayOne copies src to dst through out (dst, or a writer to it), each
// read written at once, and half-closes dst at the clean end of src; on an
// error it closes both. A half-close that fails needs no word in the log:
// dst is gone, and its own direction reports that.
func relayOne(dst, src duplex, out, tap io.Writer, what string, logf func(string, ...any)) int64 {
	w := out
	if tap != nil {
		// Recorded before it is sent: the answer it provokes can only be
		// recorded after it, so the dump keeps the relay's order.
		w = io.MultiWriter(tap, out)
	}
	n, err := stream(w, noFlush, src)
	if err == nil && dst.CloseWrite() == nil {
		return n
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		logf("websocket %s: %v", what, err)
	}
	dst.Close()
	src.Close()
	return n
}

func noFlush() error { return nil }

// handOver writes to the client and then, when the read it passes on did not
// fill the buffer (nothing more was waiting), yields the CPU (rawio.Yield):
// the client this write woke runs before the relay parks. In a burst that
// fills reads, the relay keeps the CPU until it has caught up. The upstream
// end needs none: a real upstream is another machine.
type handOver struct{ io.Writer }

func (h handOver) Write(p []byte) (int, error) {
	n, err := h.Writer.Write(p)
	if err == nil && len(p) < bufSize {
		rawio.Yield()
	}
	return n, err
}

var _ duplex = (*server.Switched)(nil)
var _ duplex = (*upstream.Upgraded)(nil)
