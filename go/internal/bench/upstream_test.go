package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testKey = "sk-test-0123456789"

// newTestTarget serves the fake upstream in process and returns a target
// talking to it with the given Authorization.
func newTestTarget(t *testing.T, auth string) (*target, *upstream) {
	t.Helper()
	u := newUpstream(testKey)
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	return &target{name: "test", url: srv.URL + "/v1/responses", auth: auth, result: newResult("test")}, u
}

func TestUpstreamAuthorization(t *testing.T) {
	tests := []struct {
		name     string
		auth     []string
		want     int
		failures int64
	}{
		{name: "our key", auth: []string{"Bearer " + testKey}, want: http.StatusOK},
		{name: "no key", want: http.StatusUnauthorized, failures: 1},
		{name: "other key", auth: []string{"Bearer sk-other"}, want: http.StatusUnauthorized, failures: 1},
		{name: "key twice", auth: []string{"Bearer " + testKey, "Bearer " + testKey}, want: http.StatusUnauthorized, failures: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, u := newTestTarget(t, "")
			req, err := tg.newRequest(context.Background(), "json", strings.NewReader(jsonRequest), int64(len(jsonRequest)))
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("got status %d, want %d", resp.StatusCode, tc.want)
			}
			if got := u.counts["test"].AuthFailures; got != tc.failures {
				t.Errorf("got %d auth failures, want %d", got, tc.failures)
			}
		})
	}
}

func TestUpstreamModes(t *testing.T) {
	ctx := context.Background()
	tg, u := newTestTarget(t, "Bearer "+testKey)
	c := newClient(1)
	if _, err := postJSON(ctx, c, tg); err != nil {
		t.Errorf("json: %v", err)
	}
	p := sseParams{events: 5, size: 300, interval: 2 * time.Millisecond}
	first, delays, err := stream(ctx, c, tg, p)
	if err != nil {
		t.Fatalf("sse: %v", err)
	}
	if len(delays) != p.events || first <= 0 {
		t.Errorf("sse: got %d events, first after %v; want %d events, first after > 0", len(delays), first, p.events)
	}
	const size = 3<<20 + 7
	if _, _, err := measureBody(ctx, tg, size); err != nil {
		t.Errorf("count: %v", err)
	}
	if got := u.counts["test"].BodyBytes; got != size+int64(len(jsonRequest)+len(streamRequest)) {
		t.Errorf("got %d body bytes counted, want %d", got, size+len(jsonRequest)+len(streamRequest))
	}
	if got := u.counts["test"].BadRequests; got != 0 {
		t.Errorf("got %d bad requests, want 0", got)
	}
}

func TestUpstreamRejectsBadStreamParameters(t *testing.T) {
	tests := []struct {
		name string
		p    sseParams
	}{
		{name: "no events", p: sseParams{events: 0, size: 10}},
		{name: "huge event", p: sseParams{events: 1, size: maxEventSize + 1}},
		{name: "slow", p: sseParams{events: 1, interval: time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, u := newTestTarget(t, "Bearer "+testKey)
			if _, _, err := stream(context.Background(), newClient(1), tg, tc.p); err == nil {
				t.Errorf("got no error, want one")
			}
			if got := u.counts["test"].BadRequests; got != 1 {
				t.Errorf("got %d bad requests, want 1", got)
			}
		})
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, size := range []int{0, 60, 200, 4096} {
		ev := appendEvent(nil, 42, 1767225600123456789, size)
		if size >= 100 && len(ev) != size {
			t.Errorf("size %d: got %d bytes, want %d", size, len(ev), size)
		}
		seq, stamp, err := parseEvent(ev[:len(ev)-2])
		if err != nil || seq != 42 || stamp != 1767225600123456789 {
			t.Errorf("size %d: got %d, %d, %v, want 42, 1767225600123456789, nil", size, seq, stamp, err)
		}
	}
}

// TestMeasureWebSocket: the WebSocket phase against the fake upstream
// records every turn's messages in order, with our key, and without it
// records a failure instead of figures.
func TestMeasureWebSocket(t *testing.T) {
	p := wsParams{timed: sseParams{events: 4, size: 300, interval: time.Millisecond}, turns: 3,
		quick: sseParams{events: 2, size: 100}, quickTurns: 2}
	tg, _ := newTestTarget(t, "Bearer "+testKey)
	measureWebSocket(context.Background(), tg, p)
	if tg.result.failed() || len(tg.result.wsDelay) != 12 || len(tg.result.wsTurn) != 2 || len(tg.result.postTurn) != 2 {
		tg.result.finish()
		t.Fatalf("got %d delays, %d WebSocket turns, %d POST turns, failures %v; want 12, 2, 2, none",
			len(tg.result.wsDelay), len(tg.result.wsTurn), len(tg.result.postTurn), tg.result.Failures)
	}
	bad, u := newTestTarget(t, "Bearer sk-other")
	measureWebSocket(context.Background(), bad, p)
	if !bad.result.failed() || len(bad.result.wsDelay) != 0 || u.counts["test"].AuthFailures == 0 {
		t.Errorf("with a wrong key: got failed=%v, %d delays; want a failure and none", bad.result.failed(), len(bad.result.wsDelay))
	}
}
