package storage

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkS3Write streams 256 MiB through an S3 writer to a private
// versitygw on loopback, in 256 KiB writes as the pipeline makes them, with
// 3 uploads at once: signed bodies (the SDK hashes each with SHA-256, the
// server verifies it) against unsigned ones, in the same run, for each
// checksum setting, with 8 MiB parts (the default); and 5 MiB parts against
// 8 MiB on the default path (as fast here; slower for 1e7-row exports, see
// S3Config.PartSize). commit-ms/op is Commit alone: the last part and
// CompleteMultipartUpload, in which versitygw's POSIX backend joins the
// parts, after the last byte, where nothing overlaps it.
//
//	go test -run '^$' -bench BenchmarkS3Write -benchtime 3x ./engine/storage/
func BenchmarkS3Write(b *testing.B) {
	srv := StartS3Server(b)
	const size = 256 << 20
	data := randomBytes(size, 11)
	for _, cs := range []Checksum{ChecksumWhenRequired, ChecksumWhenSupported} {
		for _, pl := range []Payload{PayloadSigned, PayloadUnsigned} {
			for _, part := range []int64{5 << 20, 8 << 20} {
				if part != 8<<20 && (cs != ChecksumWhenRequired || pl != PayloadUnsigned) {
					continue // the part size is compared on the default path only
				}
				b.Run(fmt.Sprintf("%s/%s/%dMiB", cs, pl, part>>20), func(b *testing.B) {
					cfg := srv.Config("bench", "")
					cfg.Checksum, cfg.Payload, cfg.PartSize, cfg.Uploads = cs, pl, part, 3
					st := srv.Store(b, cfg)
					ctx := context.Background()
					b.SetBytes(size)
					var commit time.Duration
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						name := fmt.Sprintf("%08d-0000-4000-8000-000000000000.csv", i)
						w, err := st.Create(ctx, name)
						if err != nil {
							b.Fatal(err)
						}
						for off := 0; off < size; off += 256 << 10 {
							if _, err := w.Write(data[off : off+256<<10]); err != nil {
								b.Fatal(err)
							}
						}
						c0 := time.Now()
						if err := w.Commit(ctx); err != nil {
							b.Fatal(err)
						}
						commit += time.Since(c0)
						b.StopTimer()
						if err := st.Delete(ctx, name); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					// Commit: the last part and CompleteMultipartUpload, where
					// versitygw's POSIX backend joins the parts into the object.
					b.ReportMetric(float64(commit.Milliseconds())/float64(b.N), "commit-ms/op")
				})
			}
		}
	}
}
