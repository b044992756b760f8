// Package httpsyntax holds what the proxy's server (what clients send) and
// its upstream client (what it writes and reads) share of HTTP's syntax: the
// rules for tokens, field values, hosts and lengths, and the head reader.
package httpsyntax

import "strconv"

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

// ParseLength accepts a Content-Length value of 1 to 18 ASCII digits
// (RFC 9110, 8.6): no sign, no space, no list, and never an overflow.
func ParseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
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
