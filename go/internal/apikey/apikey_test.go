package apikey

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRead(t *testing.T) {
	long := strings.Repeat("k", 1024)
	tests := []struct {
		name    string
		input   string
		wantKey string // when wantErr is nil
		wantErr error
	}{
		{name: "LF", input: "sk-abc_123\n", wantKey: "sk-abc_123"},
		{name: "CRLF", input: "sk-abc_123\r\n", wantKey: "sk-abc_123"},
		{name: "EOF without newline", input: "sk-abc_123", wantKey: "sk-abc_123"},
		{name: "CR then EOF", input: "sk-abc_123\r", wantKey: "sk-abc_123"},
		{name: "second line ignored", input: "first\nsecond line!\n", wantKey: "first"},
		{name: "empty line after key", input: "key\n\n", wantKey: "key"},
		{name: "all allowed bytes", input: "ABCXYZabcxyz0189_-\n", wantKey: "ABCXYZabcxyz0189_-"},
		{name: "1024 bytes", input: long + "\n", wantKey: long},
		{name: "1024 bytes CRLF", input: long + "\r\n", wantKey: long},
		{name: "1024 bytes at EOF", input: long, wantKey: long},
		{name: "empty", input: "", wantErr: ErrEmpty},
		{name: "only LF", input: "\n", wantErr: ErrEmpty},
		{name: "only CRLF", input: "\r\n", wantErr: ErrEmpty},
		{name: "empty first line", input: "\nsk-second\n", wantErr: ErrEmpty},
		{name: "1025 bytes", input: long + "k\n", wantErr: ErrTooLong},
		{name: "1025 bytes at EOF", input: long + "k", wantErr: ErrTooLong},
		{name: "1026 bytes", input: long + "kk\n", wantErr: ErrTooLong},
		{name: "very long", input: strings.Repeat("k", 10000), wantErr: ErrTooLong},
		{name: "space", input: "sk abc\n", wantErr: ErrInvalid},
		{name: "plus", input: "sk+abc\n", wantErr: ErrInvalid},
		{name: "slash", input: "sk/abc\n", wantErr: ErrInvalid},
		{name: "dot", input: "sk.abc\n", wantErr: ErrInvalid},
		{name: "equals", input: "skabc==\n", wantErr: ErrInvalid},
		{name: "NUL", input: "sk\x00abc\n", wantErr: ErrInvalid},
		{name: "non-ASCII", input: "sk-ключ\n", wantErr: ErrInvalid},
		{name: "leading space", input: " skabc\n", wantErr: ErrInvalid},
		{name: "trailing space", input: "skabc \n", wantErr: ErrInvalid},
		{name: "tab", input: "skabc\t\n", wantErr: ErrInvalid},
		{name: "two CRs", input: "skabc\r\r\n", wantErr: ErrInvalid},
		{name: "CR inside", input: "sk\rabc\n", wantErr: ErrInvalid},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{name: "whole", wrap: func(r io.Reader) io.Reader { return r }},
		{name: "byte by byte", wrap: iotest.OneByteReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				k, err := Read(rd.wrap(strings.NewReader(tt.input)))
				if tt.wantErr != nil {
					if k != nil {
						k.Destroy()
					}
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("got error %v, want %v", err, tt.wantErr)
					}
					key, _, _ := strings.Cut(tt.input, "\n")
					if key = strings.TrimRight(key, "\r"); key != "" && strings.Contains(err.Error(), key) {
						t.Errorf("error %q contains the key", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				defer k.Destroy()
				got := k.HeaderLine()
				want := "Authorization: Bearer " + tt.wantKey + "\r\n"
				if string(got) != want {
					t.Errorf("got %q, want %q", got, want)
				}
				if cap(got) != len(got) {
					t.Errorf("got cap %d, want %d", cap(got), len(got))
				}
			})
		}
	}
}

// stopReader yields its input once and fails the test on any later Read.
type stopReader struct {
	t     *testing.T
	input []byte
	calls int
}

func (r *stopReader) Read(p []byte) (int, error) {
	r.calls++
	if r.calls > 1 {
		r.t.Errorf("got Read call %d after the newline was returned, want none", r.calls)
		return 0, io.EOF
	}
	return copy(p, r.input), nil
}

func TestReadStopsAtNewline(t *testing.T) {
	r := &stopReader{t: t, input: []byte("sk-first\nsecond")}
	k, err := Read(r)
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	defer k.Destroy()
	if got, want := string(k.HeaderLine()), "Authorization: Bearer sk-first\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadSecondLineZeroed(t *testing.T) {
	k, err := Read(strings.NewReader("sk-first\r\nSECOND"))
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	defer k.Destroy()
	if i := bytes.Index(k.mem, []byte("SECOND")); i >= 0 {
		t.Errorf("got second line at offset %d of the locked memory, want it zeroed", i)
	}
	if rest := k.mem[len(k.HeaderLine()):]; !bytes.Equal(rest, make([]byte, len(rest))) {
		t.Errorf("got non-zero bytes after the header line, want zeroes")
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		r       io.Reader
		wantErr error
	}{
		{name: "error after data", r: io.MultiReader(strings.NewReader("sk-partial"), iotest.ErrReader(boom)), wantErr: boom},
		{name: "no progress", r: iotest.ErrReader(nil), wantErr: io.ErrNoProgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Read(tt.r)
			if k != nil {
				k.Destroy()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got, want := err.Error(), "reading API key from stdin: "+tt.wantErr.Error(); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestReadFromPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.WriteString("sk-pipe\nrest"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	k, err := Read(r)
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	defer k.Destroy()
	if got, want := string(k.HeaderLine()), "Authorization: Bearer sk-pipe\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHeaderLineReadOnly(t *testing.T) {
	k, err := Read(strings.NewReader("sk-readonly\n"))
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	defer k.Destroy()
	line := k.HeaderLine()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faulted := func() (faulted bool) {
		defer func() { faulted = recover() != nil }()
		line[0] = 'X'
		return false
	}()
	if !faulted {
		t.Errorf("got a successful write to the header line, want a fault")
	}
}

func TestBackingAndDestroy(t *testing.T) {
	k, err := Read(strings.NewReader("sk-destroy\n"))
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	if k.Backing() == "" {
		t.Errorf("got empty backing, want a mechanism name")
	}
	k.Destroy()
	if got := k.HeaderLine(); got != nil {
		t.Errorf("got %q after Destroy, want nil", got)
	}
	k.Destroy() // a second call must not fault
}

// FuzzReadKey checks Read against a plain model of the rule: the first line,
// minus one trailing CR, must be 1 to 1024 bytes of [A-Za-z0-9_-].
func FuzzReadKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, input []byte) {
		line, _, _ := bytes.Cut(input, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		valid := len(line) >= 1 && len(line) <= 1024
		for _, c := range line {
			valid = valid && strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", c) >= 0
		}
		k, err := Read(bytes.NewReader(input))
		if !valid {
			if k != nil {
				k.Destroy()
				t.Fatalf("got a key, want an error")
			}
			// Exactly a rule's text: nothing of the input can leak.
			switch err.Error() {
			case "API key is empty", "API key is longer than 1024 bytes", "API key must match ^[A-Za-z0-9_-]+$":
			default:
				t.Fatalf("got error %v, want a rule's text", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("got error %v, want nil", err)
		}
		defer k.Destroy()
		if got, want := string(k.HeaderLine()), "Authorization: Bearer "+string(line)+"\r\n"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// TestReadFormat covers the workload identity formats (issue 10): their
// lengths, alphabets, header lines and errors that name the credential.
func TestReadFormat(t *testing.T) {
	long := strings.Repeat("t", 16<<10)
	tests := []struct {
		name     string
		format   Format
		input    string
		wantLine string // when wantErr is nil
		wantErr  error
		wantMsg  string
	}{
		{name: "request token with dots", format: RequestTokenFormat, input: "a.b_c-D9\n", wantLine: "Authorization: bearer a.b_c-D9\r\n"},
		{name: "request token 16 KiB", format: RequestTokenFormat, input: long + "\r\n", wantLine: "Authorization: bearer " + long + "\r\n"},
		{name: "request token too long", format: RequestTokenFormat, input: long + "t\n", wantErr: ErrTooLong, wantMsg: "OIDC request token is longer than 16384 bytes"},
		{name: "request token empty", format: RequestTokenFormat, input: "\n", wantErr: ErrEmpty, wantMsg: "OIDC request token is empty"},
		{name: "request token plus", format: RequestTokenFormat, input: "a+b\n", wantErr: ErrInvalid, wantMsg: "OIDC request token must match ^[A-Za-z0-9._-]+$"},
		{name: "access token b64token", format: AccessTokenFormat, input: "ey.J~+/x==", wantLine: "Authorization: Bearer ey.J~+/x==\r\n"},
		{name: "access token space", format: AccessTokenFormat, input: "ey J", wantErr: ErrInvalid, wantMsg: "access token must match ^[A-Za-z0-9._~+/=-]+$"},
		{name: "key refuses dot", format: KeyFormat, input: "sk.x\n", wantErr: ErrInvalid, wantMsg: "API key must match ^[A-Za-z0-9_-]+$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ReadFormat(strings.NewReader(tt.input), tt.format)
			if tt.wantErr != nil {
				if k != nil {
					k.Destroy()
				}
				if !errors.Is(err, tt.wantErr) || err.Error() != tt.wantMsg {
					t.Fatalf("got error %v, want %q wrapping %v", err, tt.wantMsg, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			defer k.Destroy()
			if got := string(k.HeaderLine()); got != tt.wantLine {
				t.Errorf("got %q, want %q", got, tt.wantLine)
			}
		})
	}
}
