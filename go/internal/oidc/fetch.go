package oidc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/apikey"
	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/upstream"
)

// maxAnswer bounds the body read from GitHub or the token endpoint.
const maxAnswer = 64 << 10

// Token types the exchange must return when it names them (RFC 8693, 2.2.1).
const (
	grantType       = "urn:ietf:params:oauth:grant-type:token-exchange"
	subjectType     = "urn:ietf:params:oauth:token-type:jwt"
	accessTokenType = "urn:ietf:params:oauth:token-type:access_token"
)

// Steps, as errors name them.
const (
	stepJWT      = "getting the GitHub OIDC token"
	stepExchange = "exchanging the GitHub OIDC token for an OpenAI access token"
)

var jsonAccept = []httpsyntax.Field{{Name: "Accept", Value: "application/json"}}

var jsonBody = []httpsyntax.Field{
	{Name: "Content-Type", Value: "application/json"},
	{Name: "Accept", Value: "application/json"},
}

// fetch gets a fresh JWT from GitHub and exchanges it for an access token,
// which it returns in locked memory with its lifetime. Every heap buffer of
// ours that held the JWT or the token is zeroed before fetch returns; errors
// name the step and never hold a secret.
func (s *Source) fetch(ctx context.Context) (*apikey.Key, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()

	jwt, err := s.getJWT(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", stepJWT, err)
	}
	defer clear(jwt)
	key, lifetime, err := s.exchange(ctx, jwt)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", stepExchange, err)
	}
	return key, lifetime, nil
}

// getJWT asks GitHub for an OIDC JWT: GET <request URL>&audience=...,
// with the request token written from its locked page.
func (s *Source) getJWT(ctx context.Context) ([]byte, error) {
	status, body, err := call(ctx, s.github, jsonAccept, nil)
	defer clear(body)
	if err != nil {
		return nil, err
	}
	return parseJWT(status, body)
}

// parseJWT returns the JWT of GitHub's answer {"value":"<jwt>"} as a copy of
// its own, zeroing every other copy it made.
func parseJWT(status int, body []byte) ([]byte, error) {
	if status != 200 {
		return nil, fmt.Errorf("HTTP %d", status)
	}
	var answer struct {
		Value json.RawMessage `json:"value"`
	}
	err := json.Unmarshal(body, &answer)
	// A repeated key reuses the copy: zero all of it, to its capacity.
	defer clear(answer.Value[:cap(answer.Value)])
	if err != nil {
		return nil, errors.New("answer is not a JSON object")
	}
	jwt, ok := plainString(answer.Value)
	if !ok || !isJWT(jwt) {
		return nil, errors.New(`answer has no "value" holding a JWT`)
	}
	return bytes.Clone(jwt), nil
}

// exchange trades jwt for an access token at the token endpoint.
func (s *Source) exchange(ctx context.Context, jwt []byte) (*apikey.Key, time.Duration, error) {
	body := make([]byte, 0, 512+len(jwt)+len(s.ids))
	body = append(body, `{"grant_type":"`+grantType+`","subject_token_type":"`+subjectType+`","subject_token":"`...)
	body = append(body, jwt...)
	body = append(body, `",`...)
	body = append(body, s.ids...)
	body = append(body, '}')
	defer clear(body)

	status, answer, err := call(ctx, s.tokens, jsonBody, body)
	defer clear(answer)
	if err != nil {
		return nil, 0, err
	}
	tok, lifetime, err := parseExchange(status, answer)
	defer clear(tok[:cap(tok)])
	if err != nil {
		return nil, 0, err
	}
	key, err := apikey.ReadFormat(bytes.NewReader(tok), apikey.AccessTokenFormat)
	if err != nil {
		// The error names the rule, never the bytes.
		return nil, 0, err
	}
	return key, lifetime, nil
}

// parseExchange checks the token endpoint's answer (RFC 8693, 2.2) and
// returns its access token, in a copy the caller must zero to its capacity,
// and its lifetime.
// Its errors carry the status and the OAuth error code, never a token.
func parseExchange(status int, answer []byte) ([]byte, time.Duration, error) {
	var a struct {
		AccessToken     json.RawMessage `json:"access_token"`
		IssuedTokenType *string         `json:"issued_token_type"`
		TokenType       *string         `json:"token_type"`
		ExpiresIn       json.RawMessage `json:"expires_in"`
		Error           *string         `json:"error"`
	}
	err := json.Unmarshal(answer, &a)
	fail := func(err error) ([]byte, time.Duration, error) {
		clear(a.AccessToken[:cap(a.AccessToken)])
		return nil, 0, err
	}
	if status != 200 {
		if err == nil && a.Error != nil && isOAuthCode(*a.Error) {
			return fail(fmt.Errorf("HTTP %d (%s)", status, *a.Error))
		}
		return fail(fmt.Errorf("HTTP %d", status))
	}
	if err != nil {
		return fail(errors.New("answer is not a JSON object"))
	}
	tok, ok := plainString(a.AccessToken)
	switch {
	case !ok || len(tok) == 0:
		return fail(errors.New("answer has no access_token"))
	case a.IssuedTokenType != nil && *a.IssuedTokenType != accessTokenType:
		return fail(fmt.Errorf("issued_token_type is %q, want %q", trim(*a.IssuedTokenType), accessTokenType))
	case a.TokenType != nil && !strings.EqualFold(*a.TokenType, "Bearer"):
		return fail(fmt.Errorf("token_type is %q, want Bearer", trim(*a.TokenType)))
	}
	secs, err := strconv.ParseInt(string(a.ExpiresIn), 10, 64)
	if err != nil || secs <= 0 || secs > math.MaxInt32 {
		return fail(errors.New("expires_in must be a positive number of seconds"))
	}
	return tok, time.Duration(secs) * time.Second, nil
}

// call sends one request and reads the whole answer, at most maxAnswer
// bytes. The pooled connection is closed afterwards, so no secret answer
// waits in an idle connection's buffers.
func call(ctx context.Context, c *upstream.Client, fields []httpsyntax.Field, body []byte) (int, []byte, error) {
	defer c.CloseIdleConnections()
	resp, err := c.Do(ctx, fields, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	size := maxAnswer + 1
	if resp.ContentLength >= 0 && resp.ContentLength < maxAnswer {
		size = int(resp.ContentLength) + 1
	}
	buf := make([]byte, 0, size)
	for len(buf) < maxAnswer+1 {
		if len(buf) == cap(buf) {
			// Grow by hand so no copy of the answer is left behind
			// unzeroed, as append's growth would leave it.
			bigger := make([]byte, len(buf), min(2*cap(buf), maxAnswer+1))
			copy(bigger, buf)
			clear(buf)
			buf = bigger
		}
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return resp.StatusCode, buf, nil
		}
		if err != nil {
			return 0, buf, fmt.Errorf("reading the answer: %w", err)
		}
	}
	return 0, buf, fmt.Errorf("answer is longer than %d bytes", maxAnswer)
}

// plainString returns the bytes of a JSON string without escapes, in place;
// the one escape a token may carry, "\/", is undone in place.
func plainString(raw json.RawMessage) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	in := raw[1 : len(raw)-1]
	out := in[:0]
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c == '\\' {
			if i+1 == len(in) || in[i+1] != '/' {
				return nil, false
			}
			c, i = '/', i+1
		}
		out = append(out, c)
	}
	clear(in[len(out):])
	return out, true
}

// isJWT checks the compact JWS shape: three base64url parts, two dots.
func isJWT(b []byte) bool {
	if bytes.Count(b, []byte(".")) != 2 {
		return false
	}
	for _, part := range bytes.Split(b, []byte(".")) {
		if len(part) == 0 {
			return false
		}
		for _, c := range part {
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isOAuthCode accepts an OAuth error code (RFC 6749, 5.2: %x20-21 / %x23-5B
// / %x5D-7E), short enough for a log line.
func isOAuthCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
