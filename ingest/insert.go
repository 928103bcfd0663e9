package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
)

// Pipelined bulk insert: a producer goroutine fills one activity.Block while
// ch-go encodes and sends the other, so parsing or generating overlaps with
// the network and the server. Two blocks circulate between the goroutines;
// memory stays constant whatever the input size.

// blockPipe is the producer's side of the pipeline.
type blockPipe struct {
	ctx  context.Context
	cur  *activity.Block      // being filled by the producer
	free chan *activity.Block // blocks the inserter has finished sending
	full chan *activity.Block // filled blocks, closed when the producer returns
}

// flush hands the current block to the inserter (if it holds rows) and takes
// an empty one. It fails only when the insert has ended (ctx cancelled).
func (p *blockPipe) flush() error {
	if p.cur.Rows() == 0 {
		return nil
	}
	select {
	case p.full <- p.cur:
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	select {
	case b := <-p.free:
		b.Reset()
		p.cur = b
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// errProducerFailed stops ch-go's input loop; the producer's own error is
// what insertStream returns.
var errProducerFailed = errors.New("producer failed")

// insertStream runs "INSERT INTO table VALUES" on client with the rows that
// produce appends to p.cur, calling p.flush whenever the block is big enough.
// produce runs in its own goroutine, owned and waited for here; it must
// return promptly once p.ctx is cancelled. A final partial block is flushed
// after produce returns nil. progress, if not nil, is called with the
// cumulative number of rows sent after each block, from the goroutine that
// sends to ClickHouse (never concurrently with itself; it must not block).
//
// On failure (the producer's, the server's, or ctx's) the client is closed:
// ch-go cannot abandon an INSERT midway on a live connection (its reader
// waits for the server, which waits for more data, until the read timeout),
// and closing makes the server abort the statement. Rows sent before a
// failure may already be stored in table (ClickHouse persists each block),
// which is why Load inserts into a staging table. The producer's error wins
// over the insert's.
func insertStream(ctx context.Context, client *ch.Client, table string,
	produce func(p *blockPipe) error, progress func(int64)) (int64, error) {
	ictx, cancel := context.WithCancel(ctx) // ends the insert: producer failure or caller cancel
	defer cancel()
	// The watcher closes the connection when the insert is abandoned.
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-ictx.Done():
			_ = client.Close()
		case <-stopWatch:
		}
	}()
	p := &blockPipe{
		ctx:  ictx,
		cur:  activity.NewBlock(),
		free: make(chan *activity.Block, 1),
		full: make(chan *activity.Block),
	}
	p.free <- activity.NewBlock()

	var prodErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.full)
		prodErr = produce(p)
		if prodErr == nil {
			prodErr = p.flush()
		}
		if prodErr != nil {
			cancel()
		}
	}()

	empty := activity.NewBlock()
	src := newSwitchInput(empty)
	var sending *activity.Block
	var rows int64
	err := client.Do(ictx, ch.Query{
		Body:  "INSERT INTO " + table + " VALUES",
		Input: src.input,
		OnInput: func(ctx context.Context) error {
			// ch-go has flushed the previous block to the socket before calling
			// us again, so it can go back to the producer.
			if sending != nil {
				rows += int64(sending.Rows())
				if progress != nil {
					progress(rows)
				}
				p.free <- sending // never blocks: two blocks, capacity one
				sending = nil
			}
			select {
			case b, ok := <-p.full:
				if !ok {
					src.bind(empty)
					if prodErr != nil { // set before full was closed
						return errProducerFailed
					}
					return io.EOF
				}
				sending = b
				src.bind(b)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	if err != nil {
		cancel() // stop the producer; the watcher closes the connection
	}
	close(stopWatch)
	<-watchDone
	cancel()
	<-done
	isCtxErr := func(err error) bool {
		return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	}
	switch {
	case prodErr != nil && !isCtxErr(prodErr):
		return rows, prodErr // the producer failed on its own (e.g. a bad line)
	case err == nil && prodErr == nil:
		return rows, nil
	case ctx.Err() != nil:
		return rows, ctx.Err()
	case err != nil:
		return rows, fmt.Errorf("insert into %s: %w", table, err)
	default:
		return rows, prodErr
	}
}

// switchInput is a proto.Input whose columns forward to whichever block is
// bound, so one INSERT can stream alternating blocks.
type switchInput struct {
	cols  proto.Input // the bound block's columns
	input proto.Input // forwarding columns handed to ch-go
}

func newSwitchInput(b *activity.Block) *switchInput {
	s := &switchInput{}
	s.bind(b)
	s.input = make(proto.Input, len(s.cols))
	for i, c := range s.cols {
		s.input[i] = proto.InputColumn{Name: c.Name, Data: switchCol{s: s, i: i}}
	}
	return s
}

func (s *switchInput) bind(b *activity.Block) { s.cols = b.Input() }

type switchCol struct {
	s *switchInput
	i int
}

func (c switchCol) data() proto.ColInput         { return c.s.cols[c.i].Data }
func (c switchCol) Type() proto.ColumnType       { return c.data().Type() }
func (c switchCol) Rows() int                    { return c.data().Rows() }
func (c switchCol) EncodeColumn(b *proto.Buffer) { c.data().EncodeColumn(b) }
func (c switchCol) WriteColumn(w *proto.Writer)  { c.data().WriteColumn(w) }
func (c switchCol) EncodeState(b *proto.Buffer)  { encodeState(c.data(), b) }
func (c switchCol) Prepare() error               { return prepare(c.data()) }

func encodeState(col proto.ColInput, b *proto.Buffer) {
	if s, ok := col.(proto.StateEncoder); ok {
		s.EncodeState(b)
	}
}

func prepare(col proto.ColInput) error {
	if p, ok := col.(proto.Preparable); ok {
		return p.Prepare()
	}
	return nil
}
