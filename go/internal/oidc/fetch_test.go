package oidc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseExchange: any answer of the token endpoint is parsed without a
// panic; an accepted one has a positive lifetime and the access_token's
// value; an error never contains the access_token's value.
func FuzzParseExchange(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"tok-123456","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}`,
		`{"access_token":"a\/b-123456","expires_in":1}`,
		`{"access_token":"tok-123456","expires_in":0}`,
		`{"access_token":"tok-123456","token_type":"mac","expires_in":60}`,
		`{"error":"invalid_grant","error_description":"bad"}`,
		`{"access_token":"tok-123456","expires_in":1e3}`,
		`[]`, `{`, ``,
	} {
		f.Add(200, []byte(seed))
		f.Add(400, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, status int, answer []byte) {
		var probe struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(answer, &probe)
		tok, lifetime, err := parseExchange(status, bytes.Clone(answer))
		if err != nil {
			if tok != nil {
				t.Fatalf("got a token with error %v", err)
			}
			if len(probe.AccessToken) >= 8 && strings.Contains(err.Error(), probe.AccessToken) {
				t.Fatalf("error %q contains the access token", err)
			}
			return
		}
		if status != 200 || lifetime <= 0 || len(tok) == 0 {
			t.Fatalf("accepted status %d, lifetime %v, token of %d bytes", status, lifetime, len(tok))
		}
		if ascii(tok) && string(tok) != probe.AccessToken {
			t.Fatalf("got token %q, want %q", tok, probe.AccessToken)
		}
	})
}

// FuzzParseJWT: GitHub's answer is parsed without a panic, and an accepted
// JWT is the "value" string, of the compact JWS shape.
func FuzzParseJWT(f *testing.F) {
	for _, seed := range []string{`{"count":1,"value":"eyJh.eyJw.sig"}`, `{"value":"a.b"}`, `{"value":"a\/.b.c"}`, `{"value":1}`, `{`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var probe struct {
			Value string `json:"value"`
		}
		jsonErr := json.Unmarshal(body, &probe)
		jwt, err := parseJWT(200, bytes.Clone(body))
		if err != nil {
			return
		}
		if jsonErr != nil || ascii(jwt) && string(jwt) != probe.Value || !isJWT(jwt) {
			t.Fatalf("got JWT %q from %q", jwt, body)
		}
	})
}

// ascii reports whether b is printable ASCII: only then does encoding/json's
// decoded string, the probe, hold the same bytes (it replaces invalid UTF-8).
func ascii(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
