package proxy

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the headers RFC 9110, 7.6.1 and RFC 9112 scope to one
// connection, plus the ones this proxy sets itself (Authorization, Host) or
// frames itself (Content-Length). Expect is answered by our own server.
var hopByHop = map[string]bool{
	"Authorization":       true,
	"Connection":          true,
	"Content-Length":      true,
	"Expect":              true,
	"Host":                true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// outboundHeader copies the client's headers for the upstream, dropping
// hop-by-hop headers, every header that Connection names, and anything that
// could carry or displace credentials. The key is added later, on the wire,
// so no client header can remove or duplicate it.
func outboundHeader(in http.Header) http.Header {
	out := make(http.Header, len(in))
	named := connectionNamed(in)
	for name, values := range in {
		if dropped(name, named) {
			continue
		}
		out[name] = values
	}
	return out
}

// inboundHeader copies the upstream's response headers for the client, with
// the same hop-by-hop rules, and without CORS grants: no browser page may be
// told it can read our answers.
func inboundHeader(dst, src http.Header) {
	named := connectionNamed(src)
	for name, values := range src {
		if dropped(name, named) || strings.HasPrefix(name, "Access-Control-") {
			continue
		}
		dst[name] = values
	}
}

func dropped(name string, named map[string]bool) bool {
	return hopByHop[name] || strings.HasPrefix(name, "Proxy-") || named[name]
}

// connectionNamed lists the headers that Connection declares hop-by-hop.
// It returns nil, without allocating, in the common case of no Connection.
func connectionNamed(h http.Header) map[string]bool {
	var named map[string]bool
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			name = textproto.TrimString(name)
			if name == "" {
				continue
			}
			if named == nil {
				named = make(map[string]bool)
			}
			named[textproto.CanonicalMIMEHeaderKey(name)] = true
		}
	}
	return named
}
