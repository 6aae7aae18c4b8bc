package treeindex

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkReadAllReal reads the index named by $ZSP_INDEX (a published
// tree's .zsyncpipe/index.jsonl.gz), e.g. of a Go toolchain tree.
func BenchmarkReadAllReal(b *testing.B) {
	p := os.Getenv("ZSP_INDEX")
	if p == "" {
		b.Skip("ZSP_INDEX not set")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadAll(bytes.NewReader(data), ReaderOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
