//go:build !unix

package upstream

import (
	"errors"
	"os"
	"time"
)

// aliveWait is how long alive waits for a byte or EOF; Windows sockets have
// no non-blocking peek through syscall.RawConn.
const aliveWait = time.Millisecond

// alive reports whether an idle connection can carry a request: the
// upstream has neither closed it (EOF) nor sent anything unasked (which
// would be read as the next response).
func (pc *conn) alive() bool {
	if pc.nc.SetReadDeadline(time.Now().Add(aliveWait)) != nil {
		return false
	}
	_, err := pc.br.Peek(1)
	return errors.Is(err, os.ErrDeadlineExceeded) && pc.nc.SetReadDeadline(time.Time{}) == nil
}
