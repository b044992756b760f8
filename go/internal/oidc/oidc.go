// Package oidc is GitHub Actions workload identity (issue 10): it trades a
// GitHub-issued OIDC JWT for short-lived OpenAI access tokens and keeps one
// current, renewing it in the background.
//
// Three secrets pass through it. The request token (GitHub's
// ACTIONS_ID_TOKEN_REQUEST_TOKEN) is read by package apikey into locked
// memory and written to GitHub from there by package upstream, never copied.
// The JWT and the access token arrive in response bodies: they pass through
// the TLS and read buffers of a connection that is closed after each call,
// then through heap buffers of this package that are zeroed once used. Each
// access token is copied into locked memory of its own as its header line;
// requests lease it, and a replaced or expired token is zeroed and unmapped
// when its last lease ends.
//
// Errors and log lines never hold any of the three.
package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/apikey"
	"github.com/openai/codex-responses-api-proxy/go/internal/upstream"
)

// Renewal policy (issue 10, 6).
const (
	attemptTimeout = 30 * time.Second // one JWT fetch and exchange
	backoffMin     = time.Second      // first retry after a failed renewal, jittered
	backoffMax     = 30 * time.Second
	kickInterval   = time.Second // expired-token requests trigger at most one attempt a second
)

// ErrUnavailable is Acquire's error when no unexpired token is held.
var ErrUnavailable = errors.New("workload identity renewal temporarily unavailable; retry later")

// testOnlyNow replaces the clock in tests.
var testOnlyNow = time.Now

// Config describes the GitHub and OpenAI endpoints and the identity.
type Config struct {
	RequestURL         *url.URL // ACTIONS_ID_TOKEN_REQUEST_URL
	Audience           string
	RequestToken       []byte // "Authorization: bearer <token>\r\n", locked, from apikey
	ExchangeURL        *url.URL
	IdentityProviderID string
	ServiceAccountID   string
	// Logf receives one line per token obtained, renewal failure and
	// expiry; it must be safe for concurrent use.
	Logf func(format string, args ...any)
}

// Source holds the current access token and renews it. Its methods are safe
// for concurrent use.
type Source struct {
	github *upstream.Client
	tokens *upstream.Client
	ids    []byte // `"identity_provider_id":"...","service_account_id":"..."`
	logf   func(format string, args ...any)

	kick   chan struct{} // a renewal attempt is wanted now
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the renewal loop has ended

	mu       sync.Mutex
	cur      *token // nil before the first token and after expiry
	lastKick time.Time
}

// token is one access token with its lease count. The Source's own
// reference counts as one while the token is current.
type token struct {
	key      *apikey.Key
	obtained time.Time
	expires  time.Time
	refs     int  // under Source.mu
	rejected bool // under Source.mu: a 401 has asked for its renewal
}

// New checks cfg and returns a Source holding no token yet.
func New(cfg Config) (*Source, error) {
	withAudience, err := WithAudience(cfg.RequestURL, cfg.Audience)
	if err != nil {
		return nil, err
	}
	github, err := upstream.New(upstream.Config{
		URL:                   withAudience,
		Auth:                  cfg.RequestToken,
		Method:                "GET",
		ZeroBuffers:           true, // the answer holds the JWT
		ResponseHeaderTimeout: attemptTimeout,
	})
	if err != nil {
		return nil, err
	}
	tokens, err := upstream.New(upstream.Config{URL: cfg.ExchangeURL, NoAuth: true, ZeroBuffers: true, ResponseHeaderTimeout: attemptTimeout})
	if err != nil {
		return nil, err
	}
	idp, _ := json.Marshal(cfg.IdentityProviderID)
	sa, _ := json.Marshal(cfg.ServiceAccountID)
	ids := append([]byte(`"identity_provider_id":`), idp...)
	ids = append(append(ids, `,"service_account_id":`...), sa...)
	ctx, cancel := context.WithCancel(context.Background())
	return &Source{
		github: github,
		tokens: tokens,
		ids:    ids,
		logf:   cfg.Logf,
		kick:   make(chan struct{}, 1),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}, nil
}

// Start obtains the first access token, then renews in the background until
// Close. Its error names the step that failed.
func (s *Source) Start(ctx context.Context) error {
	key, lifetime, err := s.fetch(ctx)
	if err != nil {
		close(s.done)
		return err
	}
	s.install(key, lifetime, "obtained")
	go s.run()
	return nil
}

// Lease is one request's hold on a token; the zero Lease holds nothing.
type Lease struct {
	s *Source
	t *token
}

// Acquire leases the current token, or returns ErrUnavailable when it has
// expired and no new one could be had yet; such a request also triggers a
// renewal attempt at once, at most one a second.
func (s *Source) Acquire() (Lease, error) {
	now := testOnlyNow()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.cur
	if t == nil || !now.Before(t.expires) {
		if now.Sub(s.lastKick) >= kickInterval {
			s.lastKick = now
			s.wake()
		}
		return Lease{}, ErrUnavailable
	}
	t.refs++
	return Lease{s: s, t: t}, nil
}

// Line is the leased "Authorization: Bearer <token>\r\n", in locked memory,
// valid until Release.
func (l Lease) Line() []byte { return l.t.key.HeaderLine() }

// Release ends the lease; a replaced token is wiped with its last one.
func (l Lease) Release() {
	if l.t != nil {
		l.s.release(l.t)
	}
}

// Rejected reports that the upstream answered 401 to the leased token: it
// is renewed at once, at most once per token.
func (l Lease) Rejected() {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != l.t || l.t.rejected {
		return
	}
	l.t.rejected = true
	s.logf("workload identity: the upstream refused the access token (401); renewing now")
	s.wake()
}

// Close stops renewal and lets go of the current token, which is wiped when
// its last lease ends.
func (s *Source) Close() {
	s.cancel()
	<-s.done
	s.swap(nil)
}

func (s *Source) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Source) release(t *token) {
	s.mu.Lock()
	t.refs--
	last := t.refs == 0
	s.mu.Unlock()
	if last {
		t.key.Destroy()
	}
}

// swap makes t (nil: none) the current token and lets go of the previous
// one.
func (s *Source) swap(t *token) {
	s.mu.Lock()
	old := s.cur
	s.cur = t
	s.mu.Unlock()
	if old != nil {
		s.release(old)
	}
}

// install makes key the current token and lets go of the previous one.
func (s *Source) install(key *apikey.Key, lifetime time.Duration, verb string) {
	now := testOnlyNow()
	t := &token{key: key, obtained: now, expires: now.Add(lifetime), refs: 1}
	s.swap(t)
	s.logf("workload identity: %s an access token (%s memory), expires at %s, renewal at %s",
		verb, key.Backing(), t.expires.UTC().Format(time.RFC3339), t.renewAt().UTC().Format(time.RFC3339))
}

// renewAt is when half the token's lifetime has passed.
func (t *token) renewAt() time.Time {
	return t.obtained.Add(t.expires.Sub(t.obtained) / 2)
}

// dropExpired lets go of the current token once it has expired, so that no
// useless token stays in memory while renewal keeps failing.
func (s *Source) dropExpired() {
	now := testOnlyNow()
	s.mu.Lock()
	t := s.cur
	if t == nil || now.Before(t.expires) {
		s.mu.Unlock()
		return
	}
	s.cur = nil
	s.mu.Unlock()
	s.logf("workload identity: the access token expired at %s; answering 503 until renewal succeeds", t.expires.UTC().Format(time.RFC3339))
	s.release(t)
}

// run renews at half-life; after a failure it retries with jittered,
// doubling backoff from backoffMin to backoffMax, and at once when woken (a
// 401, or a request after expiry), but never twice within kickInterval.
func (s *Source) run() {
	defer close(s.done)
	var backoff time.Duration // 0 while renewal succeeds
	var last time.Time        // the last attempt
	next, _, _ := s.schedule()
	for {
		wakeAt := next
		if _, exp, ok := s.schedule(); ok && exp.Before(wakeAt) {
			wakeAt = exp // to wipe the token the moment it is useless
		}
		timer := time.NewTimer(max(wakeAt.Sub(testOnlyNow()), 0))
		kicked := false
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-s.kick:
			kicked = true
		case <-timer.C:
		}
		timer.Stop()
		s.dropExpired()
		now := testOnlyNow()
		switch {
		case kicked && now.Sub(last) < kickInterval:
			next = last.Add(kickInterval)
			continue
		case !kicked && now.Before(next):
			continue // woken at expiry only
		}
		last = now
		key, lifetime, err := s.fetch(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			backoff = nextBackoff(backoff)
			wait := jitter(backoff)
			next = testOnlyNow().Add(wait)
			s.logf("workload identity: renewal failed: %v; next attempt in %v", err, wait.Round(time.Millisecond))
			continue
		}
		backoff = 0
		s.install(key, lifetime, "renewed")
		next, _, _ = s.schedule()
	}
}

// schedule is when the current token, if any, is half-way through its
// lifetime and when it expires.
func (s *Source) schedule() (renewAt, expires time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return time.Time{}, time.Time{}, false
	}
	return s.cur.renewAt(), s.cur.expires, true
}

// nextBackoff doubles d from backoffMin up to backoffMax.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return backoffMin
	}
	return min(2*d, backoffMax)
}

// jitter spreads d over [0.8d, 1.2d), capped at backoffMax, so that many
// jobs that failed together do not retry in step.
func jitter(d time.Duration) time.Duration {
	return min(time.Duration(float64(d)*(0.8+0.4*rand.Float64())), backoffMax)
}
