package proxy

import (
	"strings"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// preflightMaxAge is how long, in seconds, a browser may cache our answer
// to a preflight. Short: each POST is checked by the gate anyway, and a
// proxy restarted without the origin should not stay granted in a cache.
const preflightMaxAge = "600"

// preflight reports whether fields are those of a CORS preflight (Fetch
// standard, "CORS-preflight request") that the proxy answers itself: one
// allowed Origin, asking to send exactly POST, with request headers that are
// all valid tokens. A preflight asking for Private Network Access (a public
// or private-network page reaching loopback) is refused: that browser guard
// stays in place, and loopback pages never send it.
func (g *Gate) preflight(fields []httpsyntax.Field) bool {
	origin, n := httpsyntax.Lookup(fields, "Origin")
	if n != 1 || !g.originAllowed(origin) {
		return false
	}
	if m, n := httpsyntax.Lookup(fields, "Access-Control-Request-Method"); n != 1 || m != "POST" {
		return false
	}
	if _, n := httpsyntax.Lookup(fields, "Access-Control-Request-Private-Network"); n != 0 {
		return false
	}
	_, ok := requestedHeaders(fields)
	return ok
}

// requestedHeaders returns the preflight's Access-Control-Request-Headers
// as a comma-separated list of tokens to grant, or false if there is more
// than one such field or an element is not a token. Empty elements are
// skipped (RFC 9110, 5.6.1.2).
func requestedHeaders(fields []httpsyntax.Field) (string, bool) {
	list, n := httpsyntax.Lookup(fields, "Access-Control-Request-Headers")
	if n > 1 {
		return "", false
	}
	var b strings.Builder
	for name := range strings.SplitSeq(list, ",") {
		name = strings.Trim(name, " \t")
		if name == "" {
			continue
		}
		if !httpsyntax.IsToken(name) {
			return "", false
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
	}
	return b.String(), true
}

// preflightFields is the proxy's answer to a preflight the gate let through:
// the page may POST with the headers it asked for.
func preflightFields(fields []httpsyntax.Field) []httpsyntax.Field {
	origin, _ := httpsyntax.Lookup(fields, "Origin")
	out := []httpsyntax.Field{
		{Name: "Access-Control-Allow-Origin", Value: origin},
		{Name: "Access-Control-Allow-Methods", Value: "POST"},
		{Name: "Access-Control-Max-Age", Value: preflightMaxAge},
		// The answer depends on both; caches must not reuse it for others.
		{Name: "Vary", Value: "Origin, Access-Control-Request-Headers"},
	}
	if headers, _ := requestedHeaders(fields); headers != "" {
		out = append(out, httpsyntax.Field{Name: "Access-Control-Allow-Headers", Value: headers})
	}
	return out
}

// grant lets the page that sent a forwarded request read the answer, if
// its origin is allowed. It is nil for a request without Origin (every
// non-browser client).
func (g *Gate) grant(fields []httpsyntax.Field) []httpsyntax.Field {
	origin, n := httpsyntax.Lookup(fields, "Origin")
	if n != 1 || !g.originAllowed(origin) {
		return nil
	}
	return []httpsyntax.Field{
		{Name: "Access-Control-Allow-Origin", Value: origin},
		{Name: "Vary", Value: "Origin"},
	}
}
