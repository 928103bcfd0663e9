package engine_test

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// cutProxy forwards TCP to a server until cut: then it drops every open
// connection and refuses new ones, as a network partition would.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.set(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// set cuts (true) or restores (false) the link.
func (p *cutProxy) set(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// heldReader streams from ClickHouse but holds after the first block until
// release is closed.
type heldReader struct {
	*source.ClickHouse
	started, release chan struct{}
}

func (r *heldReader) Stream(ctx context.Context, q source.Query, p *source.Plan, fn func(*activity.Block) error) (source.Stats, error) {
	first := true
	return r.ClickHouse.Stream(ctx, q, p, func(b *activity.Block) error {
		if err := fn(b); err != nil {
			return err
		}
		if first {
			first = false
			close(r.started)
			<-r.release
		}
		return nil
	})
}

// The control plane (PostgreSQL) becomes unreachable just before an export
// ends: its final state (here ready) is kept and served, and recorded with
// the same fenced Finish as soon as PostgreSQL is back, rather than the
// record staying "running" until the lost-owner rule turns it
// failed/shutdown and orphans a committed file.
func TestFaultFinalRecordKeptUntilPostgresReturns(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e8000000", 1)
	seed(t, ent, 100)
	pcfg, err := pgxpool.ParseConfig(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, net.JoinHostPort(pcfg.ConnConfig.Host, strconv.Itoa(int(pcfg.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	pcfg.ConnConfig.Host, pcfg.ConnConfig.Port = host, uint16(p)
	pcfg.ConnConfig.ConnectTimeout = time.Second
	proxied, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer proxied.Close()
	dir := t.TempDir()
	st, _ := storage.NewFile(dir)
	r := &heldReader{ClickHouse: source.New(chCfg, source.Options{}), started: make(chan struct{}), release: make(chan struct{})}
	eng, err := engine.New(engine.Config{Reader: r, Records: pgstore.New(proxied), Store: st, Owner: "fault-final-record",
		Heartbeat: 100 * time.Millisecond, StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown(ctx)

	x, err := eng.Submit(ctx, request(ent))
	if err != nil {
		t.Fatal(err)
	}
	<-r.started
	proxy.set(true)
	close(r.release)
	y, err := eng.Wait(ctx, x.ID, 30*time.Second)
	if err != nil || y.Status != engine.StatusReady || y.Checksum == "" || y.RowCount != 100 {
		t.Fatalf("with the records unreachable: %+v %v", y, err)
	}
	direct := records
	if rec, err := direct.Get(ctx, x.ID); err != nil || engine.Terminal(rec.Status) {
		t.Fatalf("the final state cannot have been recorded yet: %+v %v", rec, err)
	}
	if _, err := os.Stat(dir + "/" + x.ObjectName()); err != nil {
		t.Fatalf("artefact: %v", err)
	}

	proxy.set(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := direct.Get(ctx, x.ID)
		if err == nil && rec.Status == engine.StatusReady && rec.Checksum == y.Checksum && rec.ByteSize == y.ByteSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("final state not recorded after ClickHouse came back: %+v %v", rec, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if z, err := eng.Get(ctx, x.ID); err != nil || z.Status != engine.StatusReady || z.Checksum != y.Checksum {
		t.Fatalf("after recording: %+v %v", z, err)
	}
}
