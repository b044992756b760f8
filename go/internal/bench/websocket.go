package main

// The WebSocket phase (issue 11): one socket per round and target, as Codex
// keeps one per session, carrying turns of stamped events as JSON text
// messages, the way the Responses API's WebSocket mode carries the SSE
// stream's events; and the same turns as POSTs for comparison.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// wsCreate is the client's message that starts a turn; the fake upstream
// answers it with that many stamped events.
type wsCreate struct {
	Type     string `json:"type"`
	Events   int    `json:"events"`
	Size     int    `json:"size"`
	Interval string `json:"interval"`
}

// serveWebSocket accepts the upgrade and answers each response.create with
// its events, each one message: the data of an SSE event of appendEvent.
// It returns an error for a message it cannot answer.
func serveWebSocket(w http.ResponseWriter, r *http.Request) error {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return nil // the client closed: the end of a session
		}
		var m wsCreate
		if err := json.Unmarshal(msg, &m); err != nil || m.Type != "response.create" {
			c.Close(websocket.StatusPolicyViolation, "want response.create")
			return fmt.Errorf("bad message %.40q", msg)
		}
		interval, err := time.ParseDuration(m.Interval)
		p := sseParams{events: m.Events, size: m.Size, interval: interval}
		if err := errors.Join(err, p.check()); err != nil {
			c.Close(websocket.StatusPolicyViolation, "bad parameters")
			return err
		}
		sendEvents(ctx, p, func(ev []byte) error {
			data := ev[len(eventPrefix) : len(ev)-len("\n\n")]
			return c.Write(ctx, websocket.MessageText, data)
		})
	}
}

// wsParams size the WebSocket phase of one round and target.
type wsParams struct {
	timed      sseParams // turns whose per-message delay is measured
	turns      int       // how many
	quick      sseParams // turns whose duration is measured, as WebSocket and as POST
	quickTurns int
}

// measureWebSocket runs the quick turns as POSTs on one keep-alive
// connection, then opens one socket to t and runs the turns on it.
func measureWebSocket(ctx context.Context, t *target, p wsParams) {
	// The POST turns first: a target that refuses WebSockets (the reference
	// answers 403) still gets its POST figure.
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	for i := 0; i < p.quickTurns && ctx.Err() == nil; i++ {
		start := time.Now()
		if _, _, err := stream(ctx, hc, t, p.quick); err != nil {
			t.result.fail("websocket", fmt.Errorf("POST turn: %w", err))
			continue
		}
		t.result.postTurn = append(t.result.postTurn, time.Since(start))
	}

	h := http.Header{headerTarget: {t.name}}
	if t.auth != "" {
		h.Set("Authorization", t.auth)
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, _, err := websocket.Dial(dialCtx, "ws"+strings.TrimPrefix(t.url, "http"), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{}}, HTTPHeader: h,
	})
	cancel()
	if err != nil {
		t.result.fail("websocket", err)
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(maxEventSize + 1024)
	for i := 0; i < p.turns && ctx.Err() == nil; i++ {
		delays, _, err := wsTurn(ctx, c, p.timed)
		if err != nil {
			t.result.fail("websocket", err)
			return
		}
		t.result.wsDelay = append(t.result.wsDelay, delays...)
	}
	for i := 0; i < p.quickTurns && ctx.Err() == nil; i++ {
		_, d, err := wsTurn(ctx, c, p.quick)
		if err != nil {
			t.result.fail("websocket", err)
			return
		}
		t.result.wsTurn = append(t.result.wsTurn, d)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// wsTurn sends one response.create and reads its events, returning each
// event's arrival minus its send stamp, and the turn's duration from the
// send to the last event.
func wsTurn(ctx context.Context, c *websocket.Conn, p sseParams) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second+time.Duration(p.events)*p.interval)
	defer cancel()
	msg, _ := json.Marshal(wsCreate{Type: "response.create", Events: p.events, Size: p.size, Interval: p.interval.String()})
	start := time.Now()
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return nil, 0, err
	}
	delays := make([]time.Duration, 0, p.events)
	for len(delays) < p.events {
		_, data, err := c.Read(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("after %d of %d events: %w", len(delays), p.events, err)
		}
		now := time.Now()
		seq, stamp, err := parseEventData(data)
		if err != nil {
			return nil, 0, err
		}
		if seq != len(delays) {
			return nil, 0, fmt.Errorf("got event %d, want %d", seq, len(delays))
		}
		delays = append(delays, time.Duration(now.UnixNano()-stamp))
	}
	return delays, time.Since(start), nil
}
