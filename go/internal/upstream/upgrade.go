package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/openai/codex-responses-api-proxy/go/internal/httpsyntax"
)

// Upgrade asks the upstream to switch the connection to protocol (RFC 9110,
// 7.8): a GET of the upstream URL with fields, "Connection: Upgrade",
// "Upgrade: protocol" and the Auth line, written as Do writes it, on a
// connection of its own (dialled as Do dials, proxies and TLS included) that
// is never pooled. fields follow Do's rules, and may not hold Connection or
// Upgrade either.
//
// A 101 returns the response, its Body empty, and the connection as
// Upgraded, which the caller must close; checking that the 101 is the one
// the protocol expects is the caller's. Any other final response returns
// with a nil Upgraded, and its Body, which the caller must close, ends the
// connection. Cancelling ctx closes the connection at any stage, the
// upgraded one too.
func (c *Client) Upgrade(ctx context.Context, protocol string, fields []httpsyntax.Field) (*Response, *Upgraded, error) {
	return c.UpgradeAuth(ctx, c.auth, protocol, fields)
}

// UpgradeAuth is Upgrade with auth, one request's header line, instead of
// Config.Auth, under DoAuth's rules: it is not used once UpgradeAuth has
// returned.
func (c *Client) UpgradeAuth(ctx context.Context, auth []byte, protocol string, fields []httpsyntax.Field) (*Response, *Upgraded, error) {
	if !httpsyntax.IsToken(protocol) {
		return nil, nil, fmt.Errorf("upgrade protocol %q is not a token", trim(protocol))
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("upstream request: %w", context.Cause(ctx))
	}
	h := getHead()
	defer putHead(h)
	b, err := appendHead(h.buf[:0], http.MethodGet, c, fields)
	if err != nil {
		return nil, nil, err
	}
	b = append(b, "Connection: Upgrade\r\nUpgrade: "...)
	b = append(b, protocol...)
	b = append(b, "\r\n"...)
	split := len(b)
	h.buf = append(b, "\r\n"...)

	pc, err := c.dial(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	x := &exchange{c: c, pc: pc, ctx: ctx, written: true, closeAfter: true, upgrade: true}
	x.stop = context.AfterFunc(ctx, pc.close)
	if _, err := pc.writeHead([][]byte{h.buf[:split], auth, h.buf[split:]}); err != nil {
		x.release(false)
		return nil, nil, x.failure("writing request head", err)
	}
	resp, _, err := x.readResponse()
	if err != nil {
		x.release(false)
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &respBody{x: x, rc: resp.Body, left: resp.ContentLength}
		return resp, nil, nil
	}
	return resp, &Upgraded{x: x}, nil
}

// Upgraded is an upstream connection that switched protocols. One goroutine
// may read while another writes (Write, CloseWrite); Close is
// safe from any goroutine.
type Upgraded struct {
	x *exchange
}

// Read reads from the upstream, starting with what it sent after the 101.
// Once that is read, a p of 4 KiB or more is read into directly.
func (u *Upgraded) Read(p []byte) (int, error) {
	n, err := u.x.pc.br.Read(p)
	if err != nil && u.x.ctx.Err() != nil {
		err = fmt.Errorf("reading upgraded connection: %w", context.Cause(u.x.ctx))
	}
	return n, err
}

// Write writes to the upstream at once.
func (u *Upgraded) Write(p []byte) (int, error) { return u.x.pc.nc.Write(p) }

// CloseWrite ends what the upstream reads (a TLS close_notify, or a TCP
// FIN), and leaves reading open.
func (u *Upgraded) CloseWrite() error {
	if cw, ok := u.x.pc.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite() // *tls.Conn, or the TCP connection
	}
	return errors.ErrUnsupported
}

// Close closes the connection; it is idempotent, and makes a Read or
// Write in another goroutine return at once.
func (u *Upgraded) Close() error {
	u.x.stop()
	u.x.pc.close()
	return nil
}
