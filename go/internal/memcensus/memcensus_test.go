package memcensus

import (
	"syscall"
	"testing"
)

func TestMask(t *testing.T) {
	tests := []struct {
		name string
		w    string
		want string
	}{
		{name: "no copy", w: "abc KEY1 def", want: "abc KEY1 def"},
		{name: "whole copy", w: "ab KEY12 cd", want: "ab ***** cd"},
		{name: "two adjacent copies", w: "KEY12KEY12x", want: "**********x"},
		{name: "copy cut at the end", w: "abcKEY", want: "abc***"},
		{name: "copy cut at the start", w: "12abc", want: "**abc"},
		{name: "only part of a copy", w: "EY1", want: "EY1"},
		{name: "empty", w: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := []byte(tc.w)
			mask(w, []byte("KEY12"))
			if string(w) != tc.want {
				t.Errorf("got %q, want %q", w, tc.want)
			}
		})
	}
}

func TestReportString(t *testing.T) {
	r := Report{
		Hits: []Hit{
			{Addr: 0x1000, Mapping: "[anon]", Perms: "rw-p", Locked: true, Before: []byte("Bearer "), After: []byte("\r\n")},
			{Addr: 0x2010, Mapping: "[heap]", Perms: "rw-p", Before: nil, After: []byte("**")},
		},
		Unreadable:   []Region{{Start: 0x3000, End: 0x4000, Mapping: "[secretmem]", Perms: "rw-s", Err: syscall.EIO}},
		PagesScanned: 7,
	}
	want := "2 copies in 7 resident pages, 1 unreadable regions" +
		"\n  copy at 0x1000 in [anon] rw-p, locked: \"Bearer \" [needle] \"\\r\\n\"" +
		"\n  copy at 0x2010 in [heap] rw-p, unlocked: \"\" [needle] \"**\"" +
		"\n  unreadable 0x3000-0x4000 in [secretmem] rw-s: " + syscall.EIO.Error()
	if got := r.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
