package httpsyntax

import "testing"

func TestClassOf(t *testing.T) {
	tests := []struct {
		name string
		want Class
	}{
		{name: "content-length", want: Framing},
		{name: "TRANSFER-ENCODING", want: Framing},
		{name: "Connection", want: Framing},
		{name: "upgrade", want: Framing},
		{name: "authorization", want: Endpoint},
		{name: "Host", want: Endpoint},
		{name: "te", want: HopByHop},
		{name: "Proxy-Authorization", want: HopByHop},
		{name: "Expect", want: HopByHop},
		{name: "Content-Type", want: 0},
		{name: "Hos", want: 0},
		{name: "Hosts", want: 0},
		{name: "", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassOf(tc.name); got != tc.want {
				t.Errorf("ClassOf(%q): got %d, want %d", tc.name, got, tc.want)
			}
		})
	}
}
