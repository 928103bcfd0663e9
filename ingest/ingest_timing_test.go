package ingest

import (
	"testing"

	"github.com/exportd/exportd/engine/activity"
)

// BenchmarkParseLine measures ParseLine (a Row with its strings per line).
func BenchmarkParseLine(b *testing.B) {
	line := []byte(lineWith(nil))
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := ParseLine(line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoaderLine measures the loader's per-line path: parse and append
// to a reused block.
func BenchmarkLoaderLine(b *testing.B) {
	lines := generatedLines(b, 4096)
	var p lineParser
	blk := activity.NewBlock()
	var size int64
	for _, l := range lines {
		size += int64(len(l))
	}
	b.ReportAllocs()
	b.SetBytes(size / int64(len(lines)))
	i := 0
	for b.Loop() {
		if i == len(lines) {
			i = 0
			blk.Reset()
		}
		if err := p.parse(lines[i]); err != nil {
			b.Fatal(err)
		}
		p.appendTo(blk)
		i++
	}
}

// BenchmarkGenerate measures generation alone, per row.
func BenchmarkGenerate(b *testing.B) {
	g := newGenerator(GenerateOptions{Seed: 1, Enterprises: 10, From: defaultGenerateFrom, To: defaultGenerateTo})
	blk := activity.NewBlock()
	b.ReportAllocs()
	for b.Loop() {
		if blk.Rows() == 65536 {
			blk.Reset()
		}
		g.fill(blk, 1)
	}
}

// BenchmarkAppendNDJSON measures rendering generated rows as NDJSON.
func BenchmarkAppendNDJSON(b *testing.B) {
	var blk *activity.Block
	_ = Generate(GenerateOptions{N: 4096, Seed: 1}, func(x *activity.Block) error { blk = x; return nil })
	var buf []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = AppendNDJSON(buf[:0], blk, i%4096)
		i++
	}
}

func generatedLines(b *testing.B, n int) [][]byte {
	var lines [][]byte
	err := Generate(GenerateOptions{N: int64(n), Seed: 1}, func(blk *activity.Block) error {
		for i := 0; i < blk.Rows(); i++ {
			l := AppendNDJSON(nil, blk, i)
			lines = append(lines, l[:len(l)-1])
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return lines
}
