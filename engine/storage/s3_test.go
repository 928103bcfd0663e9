package storage

import (
	"testing"
)

func TestParseS3URL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want S3Config // compared on the fields set here, defaults applied
		err  bool
	}{
		{url: "s3://bucket", want: S3Config{Bucket: "bucket"}},
		{url: "s3://bucket/team/exports/", want: S3Config{Bucket: "bucket", Prefix: "team/exports"}},
		{url: "s3://b/p?endpoint=http://127.0.0.1:7070&region=eu-west-1&path_style=true&checksum=when_supported&part_size=16MiB&uploads=4",
			want: S3Config{Bucket: "b", Prefix: "p", Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", PathStyle: true,
				Checksum: ChecksumWhenSupported, PartSize: 16 << 20, Uploads: 4}},
		{url: "s3://b?part_size=5242880", want: S3Config{Bucket: "b", PartSize: 5 << 20}},
		{url: "s3://b?endpoint=https%3A%2F%2Fs3.example.test", want: S3Config{Bucket: "b", Endpoint: "https://s3.example.test"}},
		{url: "s3:///prefix", err: true},
		{url: "file:///x", err: true},
		{url: "s3://b?checksum=always", err: true},
		{url: "s3://b?part_size=1MiB", err: true}, // below S3's 5 MiB minimum
		{url: "s3://b?part_size=6GiB", err: true},
		{url: "s3://b?part_size=-1", err: true},
		{url: "s3://b?uploads=0", err: true},
		{url: "s3://b?path_style=maybe", err: true},
		{url: "s3://b?endpoint=127.0.0.1:7070", err: true},
		{url: "s3://b?regoin=x", err: true},
	} {
		got, err := ParseS3URL(tc.url)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error, got %+v", tc.url, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		got.setDefaults()
		tc.want.setDefaults()
		if got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.url, got, tc.want)
		}
	}
}

func TestS3PartSizes(t *testing.T) {
	const base = 8 << 20
	for _, tc := range []struct {
		part int32
		want int64
	}{{1, base}, {1000, base}, {1001, 2 * base}, {2000, 2 * base}, {2001, 4 * base}, {9001, 512 * base}, {10000, 512 * base}} {
		if got := s3PartSize(base, tc.part); got != tc.want {
			t.Errorf("part %d: %d, want %d", tc.part, got, tc.want)
		}
	}
	if got := s3PartSize(s3MaxPartSize, 10000); got != s3MaxPartSize {
		t.Errorf("part size above 5 GiB: %d", got)
	}
	// With the default part size, 10,000 parts reach S3's 5 TiB object limit.
	var total int64
	for n := int32(1); n <= s3MaxParts; n++ {
		total += s3PartSize(base, n)
	}
	if total < 5<<40 {
		t.Errorf("10,000 parts hold %d bytes, less than 5 TiB", total)
	}
}

func TestS3PartPoolDropsLargerBuffers(t *testing.T) {
	s := &S3{cfg: S3Config{PartSize: S3MinPartSize}}
	b := s.getPart(1)
	if cap(b) != S3MinPartSize || len(b) != 0 {
		t.Fatalf("part 1 buffer: len %d cap %d", len(b), cap(b))
	}
	s.putPart(append(b, 1, 2, 3))
	if b := s.getPart(2); len(b) != 0 || cap(b) != S3MinPartSize {
		t.Fatalf("reused buffer: len %d cap %d", len(b), cap(b))
	}
	if b := s.getPart(1001); cap(b) != 2*S3MinPartSize {
		t.Fatalf("part 1001 buffer: cap %d", cap(b))
	}
}

func TestS3KeyAndLocation(t *testing.T) {
	for _, tc := range []struct{ prefix, key, loc string }{
		{"", "x.csv", "s3://b/x.csv"},
		{"/a/b/", "a/b/x.csv", "s3://b/a/b/x.csv"},
	} {
		cfg := S3Config{Bucket: "b", Prefix: tc.prefix}
		cfg.setDefaults()
		s := &S3{cfg: cfg}
		if got := s.Key("x.csv"); got != tc.key {
			t.Errorf("prefix %q: key %s, want %s", tc.prefix, got, tc.key)
		}
		if got := s.Location("x.csv"); got != tc.loc {
			t.Errorf("prefix %q: location %s, want %s", tc.prefix, got, tc.loc)
		}
	}
}
