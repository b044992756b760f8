package upstream

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// testKey is unique enough that finding it anywhere means a copy.
const testKey = "sk-test-Qx7vK2pLm9ZrT4wN8yB3"

var testAuth = []byte("Authorization: Bearer " + testKey + "\r\n")

// wait bounds every blocking step of a test.
const wait = 5 * time.Second

// rawServer is a loopback TCP server that hands each connection to handle,
// for tests that need to see or shape the bytes on the wire.
type rawServer struct {
	ln      net.Listener
	accepts atomic.Int32
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newRawServer(t testing.TB, handle func(c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url(path string) string { return "http://" + s.ln.Addr().String() + path }

// readRequest reads one request and its whole body from br.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// serveOK answers every request on c with a small keep-alive 200.
func serveOK(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

func newClient(t testing.TB, rawURL string, mod func(*Config)) *Client {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: u, Auth: testAuth}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// get sends one request and returns the status and the whole body.
func get(t *testing.T, c *Client, body string) (int, string) {
	t.Helper()
	status, _, b := getFields(t, c, body)
	return status, b
}

// getFields is get that also returns the response's fields.
func getFields(t *testing.T, c *Client, body string) (int, []httpsyntax.Field, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := c.Do(ctx, []httpsyntax.Field{{Name: "Content-Type", Value: "application/json"}}, bytes.NewReader([]byte(body)), int64(len(body)))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, resp.Fields, string(b)
}

// pooled counts c's idle connections.
func pooled(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}

// piecesReader returns its pieces one Read at a time; with eofWithLast the
// last piece comes together with io.EOF.
type piecesReader struct {
	pieces      []string
	eofWithLast bool
	err         error // returned instead of io.EOF at the end
}

func (r *piecesReader) Read(p []byte) (int, error) {
	if len(r.pieces) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := copy(p, r.pieces[0])
	r.pieces[0] = r.pieces[0][n:]
	if r.pieces[0] == "" {
		r.pieces = r.pieces[1:]
	}
	if len(r.pieces) == 0 && r.eofWithLast && r.err == nil {
		return n, io.EOF
	}
	return n, nil
}

// within fails the test unless ch delivers before the deadline.
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		panic("unreachable")
	}
}
