package httpsyntax

import "strings"

// Class says why a field is never passed on as received. One table serves
// the server, the proxy and the upstream client (issue 15), so a name added
// for one is known to all three.
type Class uint8

const (
	// Framing fields are written by the sender of each message itself
	// (RFC 9112, 6 and 7.8): Content-Length and Transfer-Encoding frame it,
	// Connection says whether the connection, and so a body delimited by
	// its close, goes on, and Upgrade switches protocols.
	Framing Class = 1 << iota
	// Endpoint fields are set once by whoever sends the request upstream:
	// Host, and Authorization, which carries the key.
	Endpoint
	// HopByHop fields are the rest of what RFC 9110, 7.6.1 scopes to one
	// connection, and Expect, which the proxy's own server answers.
	HopByHop
)

var classes = []struct {
	name  string
	class Class
}{
	{"Authorization", Endpoint},
	{"Connection", Framing},
	{"Content-Length", Framing},
	{"Expect", HopByHop},
	{"Host", Endpoint},
	{"Keep-Alive", HopByHop},
	{"Proxy-Authenticate", HopByHop},
	{"Proxy-Authorization", HopByHop},
	{"Proxy-Connection", HopByHop},
	{"Te", HopByHop},
	{"Trailer", HopByHop},
	{"Transfer-Encoding", Framing},
	{"Upgrade", Framing},
}

// ClassOf returns the class of the field name, in any case; 0 for a field
// that may be passed on.
func ClassOf(name string) Class {
	for _, c := range classes {
		// The length first: most fields are none of these.
		if len(c.name) == len(name) && strings.EqualFold(name, c.name) {
			return c.class
		}
	}
	return 0
}
