package upstream

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
)

// scripted returns its results in order, then io.EOF.
type scripted struct {
	results []error // nil means one byte of data
}

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.results) == 0 {
		return 0, io.EOF
	}
	err := s.results[0]
	s.results = s.results[1:]
	if err != nil {
		return 0, err
	}
	p[0] = 'x'
	return 1, nil
}

func TestStickyReader(t *testing.T) {
	tests := []struct {
		name    string
		results []error
		want    []error // what three reads return
	}{
		{name: "reset is final", results: []error{syscall.ECONNRESET, nil}, want: []error{syscall.ECONNRESET, syscall.ECONNRESET, syscall.ECONNRESET}},
		{name: "EOF is final", results: []error{io.EOF, nil}, want: []error{io.EOF, io.EOF, io.EOF}},
		// The liveness check's deadline on platforms without a
		// non-blocking peek: the connection stays usable.
		{name: "timeout passes", results: []error{os.ErrDeadlineExceeded, nil}, want: []error{os.ErrDeadlineExceeded, nil, io.EOF}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &stickyReader{r: &scripted{results: tc.results}}
			for i, want := range tc.want {
				if _, err := s.Read(make([]byte, 1)); !errors.Is(err, want) {
					t.Errorf("read %d: got %v, want %v", i, err, want)
				}
			}
		})
	}
}
