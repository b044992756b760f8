package upstream

// wipe overwrites the read buffer of an idle connection with zeroes, for a
// ZeroBuffers client: the answers it read (the token endpoint's access token,
// issue 10) must not stay in it once the connection is closed. Only a
// connection nobody reads from may be wiped.
func (pc *conn) wipe() {
	pc.br.Reset(zeroReader{})
	// Peek fills the whole buffer from its start: every byte is overwritten.
	_, _ = pc.br.Peek(pc.br.Size())
}

// zeroReader reads endless zeroes.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
