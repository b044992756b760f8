package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// batchConn holds what TLS writes while hold is set and sends it in one
// write: two records in one TCP write.
type batchConn struct {
	net.Conn
	hold bool
	buf  bytes.Buffer
}

func (b *batchConn) Write(p []byte) (int, error) {
	if b.hold {
		return b.buf.Write(p)
	}
	return b.Conn.Write(p)
}

func (b *batchConn) flush() error {
	b.hold = false
	_, err := b.Conn.Write(b.buf.Bytes())
	b.buf.Reset()
	return err
}

const strayResponse = "HTTP/1.1 200 OK\r\nX-Answers: stray\r\nContent-Length: 5\r\n\r\nstray"

// TestStrayResponses (issue 15): a hostile upstream follows answers with an
// unsolicited response, in the same write (and TLS record), in a record of
// its own in the same TCP write, or after a random gap, also after a 204.
// Several clients send rounds of requests; the upstream answers a round only
// once all of its requests arrived, and the next round starts only after
// every stray was sent, so each stray reaches an idle connection. No client
// may ever get an answer that is not its own.
func TestStrayResponses(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls %v", useTLS), func(t *testing.T) { testStrays(t, useTLS) })
	}
}

func testStrays(t *testing.T, useTLS bool) {
	const clients, rounds = 10, 100 // 1,000 requests
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var cfg *tls.Config
	url := "http://" + ln.Addr().String() + "/v1/responses"
	mod := func(*Config) {}
	if useTLS {
		certSrv := httptest.NewTLSServer(nil)
		cfg = certSrv.TLS.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		pool := x509.NewCertPool()
		pool.AddCert(certSrv.Certificate())
		certSrv.Close()
		url = "https://" + ln.Addr().String() + "/v1/responses"
		mod = func(c *Config) { c.RootCAs = pool }
	}
	var (
		mu      sync.Mutex
		arrived int
		gate    = make(chan struct{})
		strays  sync.WaitGroup
	)
	serve := func(raw net.Conn) {
		defer raw.Close()
		bc := &batchConn{Conn: raw}
		var c net.Conn = bc
		if useTLS {
			c = tls.Server(bc, cfg)
		}
		br := bufio.NewReader(c)
		for {
			_, body, err := readRequest(br)
			if err != nil {
				return
			}
			mu.Lock()
			arrived++
			g := gate
			if arrived == clients {
				close(g)
			}
			mu.Unlock()
			select {
			case <-g:
			case <-time.After(wait):
				return
			}
			id := string(body)
			// A random length moves the stray across bufio and TLS
			// record boundaries.
			b := id + strings.Repeat("p", rand.IntN(6000))
			answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Answers: %s\r\nContent-Length: %d\r\n\r\n%s", id, len(b), b)
			mode := rand.IntN(5)
			if mode == 4 {
				answer = "HTTP/1.1 204 No Content\r\nX-Answers: " + id + "\r\n\r\n"
				mode = rand.IntN(4)
			}
			strays.Add(1)
			switch mode {
			case 0: // same write, same TLS record
				io.WriteString(c, answer+strayResponse)
			case 1: // own TLS record, same TCP write
				bc.hold = true
				io.WriteString(c, answer)
				io.WriteString(c, strayResponse)
				bc.flush()
			case 2: // after a random gap
				io.WriteString(c, answer)
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				io.WriteString(c, strayResponse)
			default: // none
				io.WriteString(c, answer)
			}
			strays.Done()
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	defer wg.Wait()
	defer ln.Close()
	c := newClient(t, url, mod)
	defer c.CloseIdleConnections() // before wg.Wait: ends the upstream's reads
	crossed, failed, sent := 0, 0, 0
	for r := range rounds {
		sent += clients
		mu.Lock()
		arrived, gate = 0, make(chan struct{})
		mu.Unlock()
		results := make(chan string, clients)
		for i := range clients {
			go func() {
				id := fmt.Sprintf("r%d-%d", r, i)
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				resp, err := c.Do(ctx, nil, strings.NewReader(id), int64(len(id)))
				if err != nil {
					results <- "error: " + err.Error()
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got := ""
				for _, f := range resp.Fields {
					if f.Name == "X-Answers" {
						got = f.Value
					}
				}
				switch {
				case err != nil:
					results <- "error: " + err.Error()
				case got != id:
					results <- fmt.Sprintf("request %s got the answer to %q", id, got)
				default:
					results <- ""
				}
			}()
		}
		for range clients {
			if res := within(t, results, 2*wait, "an answer"); strings.HasPrefix(res, "error") {
				failed++
				t.Log(res)
			} else if res != "" {
				crossed++
				t.Log(res)
			}
		}
		if crossed+failed > 0 {
			break // one bad round is the finding; later ones would only wait out their timeouts
		}
		strays.Wait()
		time.Sleep(2 * time.Millisecond) // loopback delivery
	}
	if crossed != 0 || failed != 0 {
		t.Errorf("%d of %d requests sent: %d crossed answers, %d errors, want none", sent, clients*rounds, crossed, failed)
	}
}
