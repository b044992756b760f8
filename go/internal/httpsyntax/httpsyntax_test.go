package httpsyntax

import "testing"

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		rule func(string) bool
		in   string
		want bool
	}{
		{"token", IsToken, "X-Codex-Turn-Metadata", true},
		{"token with every tchar", IsToken, "!#$%&'*+-.^_`|~09azAZ", true},
		{"empty token", IsToken, "", false},
		{"token with a space", IsToken, "Transfer-Encoding ", false},
		{"token with a colon", IsToken, "Host:", false},
		{"token with UTF-8", IsToken, "Ünicode", false},
		{"value", ValidFieldValue, "Bearer abc\tdef ~", true},
		{"empty value", ValidFieldValue, "", true},
		{"obs-text value", ValidFieldValue, "caf\xe9", true},
		{"value with CR LF", ValidFieldValue, "a\r\nX-Injected: 1", false},
		{"value with LF", ValidFieldValue, "a\nb", false},
		{"value with NUL", ValidFieldValue, "a\x00", false},
		{"value with DEL", ValidFieldValue, "a\x7f", false},
		{"host and port", ValidHost, "127.0.0.1:8080", true},
		{"IPv6 literal", ValidHost, "[::1]:443", true},
		{"name", ValidHost, "localhost", true},
		{"empty host", ValidHost, "", false},
		{"host with user info", ValidHost, "user@host", false},
		{"host with a slash", ValidHost, "host/path", false},
		{"host with a space", ValidHost, "host name", false},
	}
	for _, tt := range tests {
		if got := tt.rule(tt.in); got != tt.want {
			t.Errorf("%s: %q: got %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestParseLength(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"005", 5, true},
		{"999999999999999999", 999999999999999999, true},
		{"1000000000000000000", 0, false}, // 19 digits
		{"", 0, false},
		{"+2", 0, false},
		{"-1", 0, false},
		{" 2", 0, false},
		{"2, 2", 0, false},
		{"0x2", 0, false},
	}
	for _, tt := range tests {
		if got, ok := ParseLength(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("ParseLength(%q): got %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestListHasToken(t *testing.T) {
	tests := []struct {
		list, token string
		want        bool
	}{
		{"close", "close", true},
		{"keep-alive, Close", "close", true},
		{" \tclose\t ", "close", true},
		{"closed", "close", false},
		{"", "close", false},
		{"keep-alive,,x", "close", false},
	}
	for _, tt := range tests {
		if got := ListHasToken(tt.list, tt.token); got != tt.want {
			t.Errorf("ListHasToken(%q, %q): got %v, want %v", tt.list, tt.token, got, tt.want)
		}
	}
}
