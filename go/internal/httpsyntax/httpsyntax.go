// Package httpsyntax holds the few grammar rules of HTTP fields that both
// the proxy's server (what clients send) and its upstream client (what it
// writes to the upstream) check: tokens, field values and hosts.
package httpsyntax

// IsToken reports whether s is a non-empty token (RFC 9110, 5.6.2): a field
// name or a method.
func IsToken(s string) bool { return allIn(s, &tokenChar) }

// ValidHost reports whether s is a non-empty host[:port] in RFC 3986's
// characters: a reg-name, an IPv4 address or a bracketed IPv6 literal.
func ValidHost(s string) bool { return allIn(s, &hostChar) }

// ValidFieldValue rejects CR, LF, NUL, DEL and the other controls except
// HTAB (RFC 9110, 5.5), the rule net/http applies to what it reads.
func ValidFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

var (
	// tokenChar is RFC 9110's tchar.
	tokenChar = alnumAnd("!#$%&'*+-.^_`|~")
	// hostChar is RFC 3986's unreserved, sub-delims, pct-encoded and the
	// ':', '[' and ']' of a port and an IP literal.
	hostChar = alnumAnd("-._~!$&'()*+,;=%:[]")
)

// alnumAnd is a byte set of ASCII letters, digits and extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

// allIn reports whether s is not empty and all its bytes are in set.
func allIn(s string, set *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return s != ""
}
