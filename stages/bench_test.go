package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// Benchmarks of each stage on 64 MiB at 4 KiB blocks. Data is generated
// deterministically and cached across b.N and benchmarks. Figures are per
// byte of target (or of seed, for Delta).
//
//	go test -run '^$' -bench . -benchtime 3x ./stages

const (
	benchSize = 64 << 20
	benchBS   = 4096
)

type benchSet struct{ target, shared95, unrelated []byte }

var benchOnce = sync.OnceValue(func() benchSet {
	target := randData(1001, benchSize)
	return benchSet{target, benchEdit(target), randData(1002, benchSize)}
})

// benchData returns the target, a seed sharing about 95 % of its blocks,
// and an unrelated random seed.
func benchData() (target, shared95, unrelated []byte) {
	s := benchOnce()
	return s.target, s.shared95, s.unrelated
}

// benchEdit returns target with scattered edits touching about 5 % of its
// blocks: every 64 KiB, a 200-byte insertion, deletion or overwrite.
func benchEdit(target []byte) []byte {
	out := make([]byte, 0, len(target)+len(target)/300)
	edit := randData(1003, 200)
	for i, k := 0, 0; i < len(target); i, k = i+64<<10, k+1 {
		piece := target[i:min(i+64<<10, len(target))]
		cut := len(piece) / 2
		out = append(out, piece[:cut]...)
		switch k % 3 {
		case 0: // insert
			out = append(out, edit...)
			out = append(out, piece[cut:]...)
		case 1: // delete
			out = append(out, piece[min(cut+200, len(piece)):]...)
		case 2: // overwrite
			out = append(out, edit...)
			out = append(out, piece[min(cut+200, len(piece)):]...)
		}
	}
	return out
}

var benchControl = sync.OnceValue(func() *control.File {
	target, _, _ := benchData()
	f, err := BlockChecksums(context.Background(), bytes.NewReader(target), ChecksumOptions{Blocksize: benchBS, SHA1: true, SHA256: true})
	if err != nil {
		panic(err)
	}
	return f
})

func BenchmarkBlockChecksums(b *testing.B) {
	target, _, _ := benchData()
	for _, tc := range []struct {
		name string
		alg  strong.Algorithm
		opts simd.Options
	}{
		{"MD5-lanes", strong.MD5, simd.Options{}},
		{"MD5-fallback", strong.MD5, simd.Options{Fallback: true}},
		{"MD4", strong.MD4, simd.Options{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHasher(b, tc.alg, tc.opts)
			if tc.name == "MD5-lanes" && !h.Lanes() {
				b.Skip("no SIMD lanes on this CPU")
			}
			b.SetBytes(benchSize)
			for b.Loop() {
				_, err := BlockChecksums(context.Background(), bytes.NewReader(target), ChecksumOptions{
					Blocksize: benchBS, Algorithm: tc.alg, Hasher: h,
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDelta(b *testing.B) {
	target, shared95, unrelated := benchData()
	f := benchControl()
	h := newHasher(b, strong.MD5, simd.Options{})
	for _, tc := range []struct {
		name string
		seed []byte
	}{
		{"identical", target},  // continuation path; ends when complete
		{"shared95", shared95}, // mostly continuation, rolling near edits
		{"random", unrelated},  // rolling path throughout
	} {
		for _, workers := range []int{1, 0} {
			name := tc.name + "/workers1"
			if workers == 0 {
				name = tc.name + "/workersDefault"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(tc.seed)))
				var found int64
				cpu0 := processCPU()
				for b.Loop() {
					m, err := Delta(context.Background(), f, []Seed{seedOf("seed", tc.seed)}, DeltaOptions{Workers: workers, Hasher: h})
					if err != nil {
						b.Fatal(err)
					}
					found = m.Found()
				}
				b.ReportMetric(100*float64(found)/float64(f.Blocks()), "%found")
				// Throughput per CPU second: on a shared machine this is
				// closer to the per-core speed than MB/s of wall time.
				if cpu := (processCPU() - cpu0).Seconds(); cpu > 0 {
					b.ReportMetric(float64(b.N)*float64(len(tc.seed))/1e6/cpu, "MB/cpu-s")
				}
			})
		}
	}
}

func BenchmarkFetch(b *testing.B) {
	target, _, _ := benchData()
	f := benchControl()
	h := newHasher(b, strong.MD5, simd.Options{})
	src := source.ReaderAt{R: bytes.NewReader(target)}
	b.SetBytes(benchSize)
	for b.Loop() {
		err := Fetch(context.Background(), f, src, []source.Range{{Start: 0, End: f.Length}}, FetchOptions{Hasher: h}, func(Batch) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
}

// sliceWriterAt is a preallocated in-memory output.
type sliceWriterAt []byte

func (s sliceWriterAt) WriteAt(p []byte, off int64) (int, error) { return copy(s[off:], p), nil }

func BenchmarkPatch(b *testing.B) {
	target, _, _ := benchData()
	f := benchControl()
	out := make(sliceWriterAt, len(target))
	const run = 1 << 20 // as fetch and CopyFromSeeds deliver
	b.SetBytes(benchSize)
	for b.Loop() {
		pt := NewPatcher(out, &f.Header)
		for off := 0; off < len(target); off += run {
			if err := pt.Write(Batch{{Index: int64(off / benchBS), Data: target[off:min(off+run, len(target))]}}); err != nil {
				b.Fatal(err)
			}
		}
		if err := pt.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	target, _, _ := benchData()
	f := benchControl()
	for _, tc := range []struct {
		name string
		h    control.Header
	}{
		{"SHA256", control.Header{Length: f.Length, SHA256: f.SHA256}},
		{"SHA1", control.Header{Length: f.Length, SHA1: f.SHA1}},
		{"both", f.Header},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				if err := Verify(context.Background(), bytes.NewReader(target), &tc.h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFloor copies the target once while hashing it with SHA-256: the
// least work any sync of it can do, the practical floor.
func BenchmarkFloor(b *testing.B) {
	target, _, _ := benchData()
	out := make([]byte, len(target))
	b.SetBytes(benchSize)
	for b.Loop() {
		h := sha256.New()
		w := bytes.NewBuffer(out[:0])
		if _, err := io.Copy(io.MultiWriter(h, w), bytes.NewReader(target)); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
	}
}
