package chconn

import (
	"context"
	"encoding/binary"
	"net"
)

// ch-go gates the client-info block of a Query packet on protocol revision
// 54420 (its FeatureClientWriteInfo), but ClickHouse servers expect that block
// from revision 54032 on. Against ClickHouse 18.16 (revision 54413, Debian's
// package) ch-go therefore omits it and the server misreads the packet
// ("Unknown setting"). No other protocol feature lies between 54401 and 54420,
// so reporting revision 54420 to ch-go for servers in [54401, 54420) makes it
// encode exactly what those servers expect. Servers at 54420 or later (every
// current release) are left untouched.
const (
	compatMinRevision  = 54401
	compatFakeRevision = 54420
)

type compatDialer struct {
	dial func(ctx context.Context) (net.Conn, error) // Config.dial: TCP or TLS
}

func (c *compatDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	return &helloConn{Conn: conn}, nil
}

// helloConn patches the revision in the first server packet (ServerHello)
// and is transparent afterwards.
type helloConn struct {
	net.Conn
	patched bool
	pending []byte
}

func (h *helloConn) Read(p []byte) (int, error) {
	if len(h.pending) > 0 {
		n := copy(p, h.pending)
		h.pending = h.pending[n:]
		return n, nil
	}
	if h.patched {
		return h.Conn.Read(p)
	}
	var tmp [512]byte
	for {
		off, state := revisionOffset(h.pending)
		if state == helloFound {
			rev, n := binary.Uvarint(h.pending[off:])
			if rev >= compatMinRevision && rev < compatFakeRevision {
				var enc [binary.MaxVarintLen64]byte
				if m := binary.PutUvarint(enc[:], compatFakeRevision); m == n {
					copy(h.pending[off:], enc[:m])
				}
			}
		}
		if state != helloIncomplete {
			h.patched = true
			break
		}
		n, err := h.Conn.Read(tmp[:])
		h.pending = append(h.pending, tmp[:n]...)
		if err != nil {
			h.patched = true
			if len(h.pending) == 0 {
				return 0, err
			}
			break
		}
	}
	return h.Read(p)
}

const (
	helloIncomplete = iota
	helloFound
	helloNot
)

// revisionOffset finds the revision varint of a ServerHello packet in b:
// code(0) name(string) major minor revision.
func revisionOffset(b []byte) (int, int) {
	code, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, helloIncomplete
	}
	if code != 0 {
		return 0, helloNot
	}
	i := n
	l, n := binary.Uvarint(b[i:])
	if n <= 0 {
		return 0, helloIncomplete
	}
	i += n + int(l)
	for k := 0; k < 3; k++ { // major, minor, revision
		if i >= len(b) {
			return 0, helloIncomplete
		}
		_, n = binary.Uvarint(b[i:])
		if n <= 0 {
			return 0, helloIncomplete
		}
		if k == 2 {
			return i, helloFound
		}
		i += n
	}
	return 0, helloNot
}
