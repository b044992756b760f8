package proxy

import (
	"net"
	"net/http"
	"strings"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
	"github.com/openai/codex-responses-api-proxy/go/internal/server"
)

// route is what a request may do once it passes the gate.
type route int

const (
	routeDenied route = iota
	routeForward
	routeWebSocket
	routePreflight // a browser asks whether an allowed page may POST
	routeShutdown
)

// Gate decides which requests reach the upstream. The zero value allows
// POST /v1/responses, and GET /v1/responses upgraded to a WebSocket, from
// loopback clients that are not browsers; Origins adds the preflight and the
// requests of the pages it names.
type Gate struct {
	// Shutdown enables GET /shutdown.
	Shutdown bool
	// Origins lists browser origins (scheme://host[:port]) that may call the
	// proxy; empty means no browser may.
	Origins []string
}

// route classifies r by its raw request target (no path cleaning, no query,
// no absolute form), method, Host and browser headers.
func (g *Gate) route(r *server.Request) route {
	if !loopbackHost(r.Host) || !g.notFromBrowser(r.Fields) {
		return routeDenied
	}
	switch {
	case r.Method == http.MethodPost && r.Target == "/v1/responses":
		return routeForward
	case r.Method == http.MethodGet && r.Target == "/v1/responses" && isWebSocketUpgrade(r):
		return routeWebSocket
	case r.Method == http.MethodOptions && r.Target == "/v1/responses" && g.preflight(r.Fields):
		return routePreflight
	case g.Shutdown && r.Method == http.MethodGet && r.Target == "/shutdown":
		return routeShutdown
	}
	return routeDenied
}

// notFromBrowser refuses what a web page can make a browser send: any request
// with an Origin (cross-site fetch, form POST) or with a Sec-Fetch-Site other
// than "none" (no-cors requests such as <img src=...> carry no Origin), unless
// the origin was allowed by the user.
func (g *Gate) notFromBrowser(fields []httpsyntax.Field) bool {
	if origin, n := httpsyntax.Lookup(fields, "Origin"); n > 0 {
		return n == 1 && g.originAllowed(origin)
	}
	site, n := httpsyntax.Lookup(fields, "Sec-Fetch-Site")
	return n == 0 || (n == 1 && site == "none")
}

func (g *Gate) originAllowed(origin string) bool {
	for _, o := range g.Origins {
		if origin == o {
			return true
		}
	}
	return false
}

// loopbackHost reports whether the Host header names this machine's loopback
// interface, with any port. A DNS-rebinding page reaches us with its own name
// in Host (attacker.example:PORT), so this check defeats it; ssh -L and other
// port forwards keep working because they preserve a loopback Host.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: a bracketed IPv6 literal keeps its brackets (RFC 9110, 7.2).
		host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
		if host != hostport && !strings.HasPrefix(hostport, "[") {
			return false
		}
	}
	return host == "127.0.0.1" || host == "::1" || strings.EqualFold(host, "localhost")
}
