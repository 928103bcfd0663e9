package storage

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkS3Write streams 256 MiB through an S3 writer to a private
// versitygw on loopback, in 256 KiB writes as the pipeline makes them, with
// the production part size (8 MiB) and uploads (3): signed bodies (the SDK
// hashes each with SHA-256, the server verifies it) against unsigned ones,
// in the same run, for each checksum setting.
//
//	go test -run '^$' -bench BenchmarkS3Write -benchtime 3x ./engine/storage/
func BenchmarkS3Write(b *testing.B) {
	srv := StartS3Server(b)
	const size = 256 << 20
	data := randomBytes(size, 11)
	for _, cs := range []Checksum{ChecksumWhenRequired, ChecksumWhenSupported} {
		for _, pl := range []Payload{PayloadSigned, PayloadUnsigned} {
			b.Run(fmt.Sprintf("%s/%s", cs, pl), func(b *testing.B) {
				cfg := srv.Config("bench", "")
				cfg.Checksum, cfg.Payload, cfg.PartSize, cfg.Uploads = cs, pl, 8<<20, 3
				st := srv.Store(b, cfg)
				ctx := context.Background()
				b.SetBytes(size)
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
					if err := w.Commit(ctx); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := st.Delete(ctx, name); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}
