package storage_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/pgstore/pgtest"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/ingest"
	"github.com/exportd/exportd/ingest/chlocal"
)

// gatedReader pauses the stream once, after `after` rows, until resume is
// closed, so that a test can break storage mid-export.
type gatedReader struct {
	engine.Reader
	after   int
	reached chan struct{}
	resume  chan struct{}
	once    sync.Once
}

func (g *gatedReader) Stream(ctx context.Context, q source.Query, p *source.Plan, fn func(*activity.Block) error) (source.Stats, error) {
	rows := 0
	return g.Reader.Stream(ctx, q, p, func(b *activity.Block) error {
		if err := fn(b); err != nil {
			return err
		}
		if rows += b.Rows(); rows >= g.after {
			g.once.Do(func() {
				close(g.reached)
				<-g.resume
			})
		}
		return nil
	})
}

func startEngine(t *testing.T, cfg engine.Config) *engine.Engine {
	t.Helper()
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Shutdown(context.Background()) })
	return eng
}

func readAll(t *testing.T, st storage.Store, name string) []byte {
	t.Helper()
	obj, err := st.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.NewSectionReader(obj, 0, obj.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEngineExportToS3 runs exports through the engine against a private
// ClickHouse and a real S3 server: the S3 artefact equals the file store's
// byte for byte, and an export whose S3 server dies mid-upload ends
// failed/storage_error with nothing left once the server is back.
func TestEngineExportToS3(t *testing.T) {
	srv := storage.StartS3Server(t) // first: it skips or fails fast
	ctx := context.Background()
	chctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dsn, stop, err := chlocal.ForTests(chctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	chCfg, err := chconn.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := chCfg.Open(chctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	if err := ingest.Migrate(chctx, pool); err != nil {
		t.Fatal(err)
	}
	// About 15 MB of CSV: three parts of 5 MiB, the last one short.
	if _, err := ingest.GenerateInto(chctx, chCfg, ingest.GenerateOptions{N: 40_000, Seed: 42, Enterprises: 1}, nil); err != nil {
		t.Fatal(err)
	}
	var ent string
	if err := pool.QueryRow(chctx, "SELECT any(enterprise_ref) FROM operations_activity").Scan(&ent); err != nil {
		t.Fatal(err)
	}
	request := func() *engine.Export {
		return &engine.Export{Format: "csv", Compression: "none", DateFrom: "2026-01-01T00:00:00Z", DateTo: "2026-07-01T00:00:00Z",
			ScopeKind: engine.KindEnterprise, ScopeRef: ent, EnterpriseRef: ent, GeneratedBy: "users/s3-test"}
	}
	reader := source.New(chCfg, source.Options{})
	pg, err := pgtest.Start(chctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	records := pg.Store

	file, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s3 := srv.Store(t, srv.Config("exports", "tenant/exports"))

	t.Run("ready", func(t *testing.T) {
		var artefacts [][]byte
		var exports []*engine.Export
		for _, st := range []storage.Store{file, s3} {
			eng := startEngine(t, engine.Config{Reader: reader, Records: records, Store: st})
			x, err := eng.Submit(ctx, request())
			if err != nil {
				t.Fatal(err)
			}
			x, err = eng.Wait(ctx, x.ID, time.Minute)
			if err != nil || x.Status != engine.StatusReady {
				t.Fatalf("export to %T: %+v, %v", st, x, err)
			}
			exports = append(exports, x)
			artefacts = append(artefacts, readAll(t, st, x.ObjectName()))
		}
		f, s := exports[0], exports[1]
		if s.RowCount != 40_000 || s.ByteSize <= 2*storage.S3MinPartSize || s.ByteSize > 3*storage.S3MinPartSize {
			t.Errorf("S3 export: %d rows, %d bytes; want 40000 rows in three parts", s.RowCount, s.ByteSize)
		}
		if s.RowCount != f.RowCount || s.ByteSize != f.ByteSize || s.Checksum != f.Checksum {
			t.Errorf("S3 export %d rows %d bytes %s, file export %d rows %d bytes %s",
				s.RowCount, s.ByteSize, s.Checksum, f.RowCount, f.ByteSize, f.Checksum)
		}
		if !bytes.Equal(artefacts[0], artefacts[1]) || int64(len(artefacts[1])) != s.ByteSize {
			t.Errorf("S3 artefact (%d bytes) differs from the file artefact (%d bytes)", len(artefacts[1]), len(artefacts[0]))
		}
		if want := "s3://exports/tenant/exports/" + s.ObjectName(); s.StorageLocation != want {
			t.Errorf("storage_location %s, want %s", s.StorageLocation, want)
		}
		if u := storage.Uploads(t, s3); len(u) > 0 {
			t.Errorf("uploads left: %v", u)
		}
	})

	t.Run("server dies mid-upload", func(t *testing.T) {
		g := &gatedReader{Reader: reader, after: 30_000, reached: make(chan struct{}), resume: make(chan struct{})}
		eng := startEngine(t, engine.Config{Reader: g, Records: records, Store: s3})
		x, err := eng.Submit(ctx, request())
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-g.reached:
		case <-time.After(time.Minute):
			t.Fatal("export never reached the gate")
		}
		// ~11 MB are through the encoder by now: wait until the upload has
		// begun, then kill the server under it.
		deadline := time.Now().Add(30 * time.Second)
		for len(storage.Uploads(t, s3)) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no multipart upload began")
			}
			time.Sleep(20 * time.Millisecond)
		}
		srv.Kill()
		close(g.resume)
		x, err = eng.Wait(ctx, x.ID, time.Minute)
		if err != nil || x.Status != engine.StatusFailed || x.FailureReason != engine.ReasonStorage {
			t.Fatalf("export with the S3 server dead: %+v, %v; want failed/storage_error", x, err)
		}
		srv.Restart()
		if _, err := s3.Sweep(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if u := storage.Uploads(t, s3); len(u) > 0 {
			t.Errorf("uploads left: %v", u)
		}
		for _, o := range storage.Objects(t, s3) {
			if strings.Contains(o, x.ID) {
				t.Errorf("object of the failed export left: %s", o)
			}
		}
	})
}
