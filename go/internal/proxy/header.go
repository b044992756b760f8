package proxy

import (
	"strings"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// outboundFields copies the client's fields for the upstream, dropping
// hop-by-hop fields, every field that Connection names, and anything that
// could carry or displace credentials. The key is added later, on the wire,
// so no client field can remove or duplicate it.
func outboundFields(in []httpsyntax.Field) []httpsyntax.Field {
	return filter(make([]httpsyntax.Field, 0, len(in)), in, false)
}

// inboundFields appends the upstream's response fields for the client to
// dst, with the same hop-by-hop rules, and without the upstream's CORS
// grants: only the gate decides which page may read our answers.
func inboundFields(dst, src []httpsyntax.Field) []httpsyntax.Field {
	return filter(dst, src, true)
}

func filter(dst, src []httpsyntax.Field, noCORS bool) []httpsyntax.Field {
	named := connectionNamed(src)
	for _, f := range src {
		if dropped(f.Name, named) || noCORS && hasPrefixFold(f.Name, "Access-Control-") {
			continue
		}
		dst = append(dst, f)
	}
	return dst
}

func dropped(name string, named []string) bool {
	if hasPrefixFold(name, "Proxy-") {
		return true
	}
	return httpsyntax.ClassOf(name) != 0 || oneOf(name, named)
}

// oneOf reports whether name is in names, in any case.
func oneOf(name string, names []string) bool {
	for _, n := range names {
		// The length first: most fields are none of these.
		if len(n) == len(name) && strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// connectionNamed lists the fields that Connection declares hop-by-hop.
// It returns nil, without allocating, in the common case of no Connection.
func connectionNamed(fields []httpsyntax.Field) []string {
	var named []string
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Connection") {
			continue
		}
		for name := range strings.SplitSeq(f.Value, ",") {
			if name = strings.TrimSpace(name); name != "" {
				named = append(named, name)
			}
		}
	}
	return named
}
