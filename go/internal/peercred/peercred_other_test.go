//go:build !linux

package peercred

import (
	"errors"
	"testing"
)

func TestNewPolicyUnsupported(t *testing.T) {
	tests := []struct {
		name          string
		users, groups []string
	}{
		{name: "user", users: []string{"root"}},
		{name: "group", groups: []string{"0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy(tc.users, tc.groups)
			if p != nil || !errors.Is(err, ErrUnsupported) {
				t.Fatalf("NewPolicy: got %v, %v, want nil, %v", p, err, ErrUnsupported)
			}
		})
	}
	if p, err := NewPolicy(nil, nil); p != nil || err != nil {
		t.Fatalf("NewPolicy(nil, nil): got %v, %v, want nil, nil", p, err)
	}
}
