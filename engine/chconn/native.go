package chconn

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"
)

// Native is a minimal ClickHouse native-protocol client for the export hot
// path: one SELECT at a time, results decoded straight into caller-owned,
// reused ch-go columns (proto.Results) with no per-row work.
//
// Why not ch-go's client: it gates the client-info block of a query and the
// write-info fields of progress packets on the same revision (54420), while
// ClickHouse sends/expects them from different revisions; with ClickHouse
// 18.16 (revision 54413, Debian's package) one or the other is always
// misread. This client announces revision 54413 to every server (current
// releases still speak it to old clients) and uses ch-go's proto package for
// every packet it decodes, so the wire format is the one both sides agree on.
type Native struct {
	conn    net.Conn
	r       *proto.Reader
	w       *bufio.Writer
	buf     proto.Buffer
	version int
	host    string
	Server  proto.ServerHello
}

// nativeRevision is the protocol revision this client speaks.
const nativeRevision = 54413

// Exception is an error answered by the ClickHouse server.
type Exception struct {
	Code    int32
	Name    string
	Message string
}

func (e *Exception) Error() string {
	return fmt.Sprintf("ClickHouse exception %d (%s): %s", e.Code, e.Name, e.Message)
}

// DialNative connects and performs the handshake.
func (c Config) DialNative(ctx context.Context) (*Native, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to ClickHouse at %s: %w", c.Addr, err)
	}
	n := &Native{conn: conn, r: proto.NewReader(bufio.NewReaderSize(conn, 256<<10)), w: bufio.NewWriterSize(conn, 64<<10), version: nativeRevision}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	defer conn.SetDeadline(time.Time{}) //nolint:errcheck
	n.buf.Reset()
	proto.ClientHello{Name: "exportd", Major: 1, Minor: 0, ProtocolVersion: nativeRevision,
		Database: c.Database, User: c.User, Password: c.Password}.Encode(&n.buf)
	if err := n.send(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", c.Addr, err)
	}
	code, err := n.r.UVarInt()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", c.Addr, err)
	}
	switch proto.ServerCode(code) {
	case proto.ServerCodeHello:
		if err := n.Server.DecodeAware(n.r, nativeRevision); err != nil {
			conn.Close()
			return nil, fmt.Errorf("handshake with %s: %w", c.Addr, err)
		}
	case proto.ServerCodeException:
		exc := n.readException()
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", c.Addr, exc)
	default:
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: unexpected packet %d", c.Addr, code)
	}
	n.version = min(nativeRevision, n.Server.Revision)
	n.host, _ = os.Hostname()
	return n, nil
}

func (n *Native) send() error {
	if _, err := n.w.Write(n.buf.Buf); err != nil {
		return err
	}
	return n.w.Flush()
}

// Close closes the connection.
func (n *Native) Close() error { return n.conn.Close() }

func (n *Native) readException() error {
	var first *Exception
	for {
		var e Exception
		code, err := n.r.Int32()
		if err != nil {
			return fmt.Errorf("read exception: %w", err)
		}
		e.Code = code
		if e.Name, err = n.r.Str(); err != nil {
			return fmt.Errorf("read exception: %w", err)
		}
		if e.Message, err = n.r.Str(); err != nil {
			return fmt.Errorf("read exception: %w", err)
		}
		if _, err = n.r.Str(); err != nil { // stack trace: never surfaced
			return fmt.Errorf("read exception: %w", err)
		}
		nested, err := n.r.Bool()
		if err != nil {
			return fmt.Errorf("read exception: %w", err)
		}
		if first == nil {
			first = &e
		}
		if !nested {
			return first
		}
	}
}

// Select runs body and decodes each data block into result, then calls
// onBlock with the number of rows (the columns are valid only until
// onBlock returns and are reset before the next block). onProgress, if not
// nil, receives progress packets. Cancelling ctx cancels the query on the
// server and closes the connection; the Native is unusable afterwards.
// A server exception is returned as *Exception; the connection stays usable.
func (n *Native) Select(ctx context.Context, body string, result proto.Results, onBlock func(rows int) error, onProgress func(proto.Progress)) (err error) {
	// Cancellation: interrupt blocking reads by closing the connection after
	// telling the server to cancel.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			_ = n.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = n.conn.Write([]byte{byte(proto.ClientCodeCancel)})
			_ = n.conn.Close()
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}()

	n.buf.Reset()
	n.encodeQuery(body)
	// End of external tables: an empty data block.
	proto.ClientCodeData.Encode(&n.buf)
	proto.ClientData{}.EncodeAware(&n.buf, n.version)
	proto.Block{}.EncodeAware(&n.buf, n.version)
	if err := n.send(); err != nil {
		return fmt.Errorf("send query: %w", err)
	}
	for {
		code, err := n.r.UVarInt()
		if err != nil {
			return fmt.Errorf("read packet: %w", err)
		}
		switch proto.ServerCode(code) {
		case proto.ServerCodeData, proto.ServerCodeTotals, proto.ServerCodeExtremes:
			var cd proto.ClientData
			if err := cd.DecodeAware(n.r, n.version); err != nil {
				return fmt.Errorf("read data packet: %w", err)
			}
			var blk proto.Block
			if proto.ServerCode(code) != proto.ServerCodeData {
				// Totals and extremes: decoded into throwaway columns.
				auto := proto.Results{}
				if err := blk.DecodeBlock(n.r, n.version, auto.Auto()); err != nil {
					return fmt.Errorf("decode block: %w", err)
				}
				continue
			}
			if err := blk.DecodeBlock(n.r, n.version, result); err != nil {
				return fmt.Errorf("decode block: %w", err)
			}
			if blk.Rows == 0 {
				continue
			}
			if err := onBlock(blk.Rows); err != nil {
				n.cancelAndDrain()
				return err
			}
		case proto.ServerCodeException:
			return n.readException()
		case proto.ServerCodeProgress:
			var p proto.Progress
			if err := p.DecodeAware(n.r, n.version); err != nil {
				return fmt.Errorf("read progress: %w", err)
			}
			if onProgress != nil {
				onProgress(p)
			}
		case proto.ServerCodeProfile:
			var p proto.Profile
			if err := p.DecodeAware(n.r, n.version); err != nil {
				return fmt.Errorf("read profile: %w", err)
			}
		case proto.ServerCodeEndOfStream:
			return nil
		default:
			return fmt.Errorf("unexpected server packet %d", code)
		}
	}
}

// cancelAndDrain asks the server to stop and closes the connection: after a
// callback error the rest of the stream is not worth reading.
func (n *Native) cancelAndDrain() {
	_ = n.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = n.conn.Write([]byte{byte(proto.ClientCodeCancel)})
	_ = n.conn.Close()
}

func (n *Native) encodeQuery(body string) {
	b := &n.buf
	proto.ClientCodeQuery.Encode(b)
	b.PutString("") // query id: server assigns
	proto.ClientInfo{
		ProtocolVersion: nativeRevision,
		Major:           1,
		Minor:           0,
		Interface:       proto.InterfaceTCP,
		Query:           proto.ClientQueryInitial,
		ClientName:      "exportd",
		InitialAddress:  n.conn.LocalAddr().String(), // servers reject an empty one
		ClientHostname:  n.host,
		OSUser:          "exportd",
	}.EncodeAware(b, n.version)
	b.PutString("") // end of settings
	proto.StageComplete.Encode(b)
	proto.CompressionDisabled.Encode(b)
	b.PutString(body)
}

// Exec runs a statement that returns no rows (DDL, INSERT ... SELECT, ALTER).
func (n *Native) Exec(ctx context.Context, body string) error {
	return n.Select(ctx, body, proto.Results{}, func(int) error { return nil }, nil)
}
