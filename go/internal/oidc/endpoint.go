package oidc

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ParseEndpoint accepts the GitHub OIDC request URL or the token exchange
// URL: an absolute https:// URL without user info or fragment, or an http://
// one for a loopback host (127.0.0.0/8, [::1], localhost), for local tests.
// Its errors quote at most 200 bytes of raw.
func ParseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %q", trim(raw))
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("must be an absolute https:// URL, got %q", trim(raw))
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return nil, fmt.Errorf("must include a host, got %q", trim(raw))
	case u.User != nil:
		// The URL may carry a password: never quote it.
		return nil, errors.New("must be HTTPS without user info or fragment")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("must be HTTPS without user info or fragment, got %q", trim(raw))
	case u.Scheme == "http" && !Loopback(u):
		return nil, fmt.Errorf("must be HTTPS (http:// only for 127.0.0.1, [::1] or localhost), got %q", trim(raw))
	}
	return u, nil
}

// CheckUpstream refuses an upstream that an OpenAI access token must never
// reach: anything but https://api.openai.com/... or a loopback URL.
func CheckUpstream(u *url.URL) error {
	if Loopback(u) || u.Scheme == "https" && strings.EqualFold(u.Hostname(), "api.openai.com") && (u.Port() == "" || u.Port() == "443") {
		return nil
	}
	return errors.New("workload identity requires https://api.openai.com/... (or a loopback URL for testing): an OpenAI access token is sent to no other host")
}

// Loopback reports whether u's host is 127.0.0.0/8, ::1 or localhost.
func Loopback(u *url.URL) bool {
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WithAudience appends audience=<percent-encoded audience> to u's query as
// GitHub's actions/core does: after "&", or "?" when u has no query; the
// existing query is kept byte for byte.
func WithAudience(u *url.URL, audience string) (*url.URL, error) {
	raw := u.String()
	sep := "&"
	if u.RawQuery == "" {
		sep = "?"
		raw = strings.TrimSuffix(raw, "?")
	}
	// QueryEscape writes a space as "+"; percent-encoding proper is %20.
	raw += sep + "audience=" + strings.ReplaceAll(url.QueryEscape(audience), "+", "%20")
	return url.Parse(raw)
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
