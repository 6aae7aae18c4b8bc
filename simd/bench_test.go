package simd

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/cpus"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

const benchBatch = 64 // blocks per SumBlocks call

// benchData returns goroutines independent sets of count blocks of n bytes.
func benchData(goroutines, count, n int) [][][]byte {
	r := rand.New(rand.NewPCG(uint64(n), uint64(count)))
	sets := make([][][]byte, goroutines)
	for g := range sets {
		sets[g] = randomBlocks(r, count, []int{n})
	}
	return sets
}

// runBench calls SumBlocks b.N times in total, split over the given number
// of goroutines, each hashing its own batch.
func runBench(b *testing.B, h *Hasher, goroutines int, sets [][][]byte) {
	size := h.Algorithm().Size()
	var bytesPerCall int64
	for _, blk := range sets[0] {
		bytesPerCall += int64(len(blk))
	}
	b.SetBytes(bytesPerCall)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			out := make([]byte, len(sets[g])*size)
			for next.Add(1) <= int64(b.N) {
				h.SumBlocks(out, size, sets[g])
			}
		})
	}
	wg.Wait()
}

func newBenchHasher(b *testing.B, alg strong.Algorithm, opts Options) *Hasher {
	h, err := NewHasher(alg, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}

// BenchmarkSumBlocks compares the lanes with crypto/md5 (and MD4) for the
// block sizes zsync uses, in batches of 64 blocks, from one and from two
// goroutines. "lanes" and "md4" are the defaults (the 8-lane AVX2 path
// where the CPU has it), "md5simd" md5-simd's servers (one per physical
// core) alone, "md5" and "md4fallback" the portable code.
func BenchmarkSumBlocks(b *testing.B) {
	impls := []struct {
		name string
		alg  strong.Algorithm
		opts Options
	}{
		{"lanes", strong.MD5, Options{}},
		{"md5simd", strong.MD5, Options{Servers: cpus.Cores()}},
		{"md5", strong.MD5, Options{Fallback: true}},
		{"md4", strong.MD4, Options{}},
		{"md4fallback", strong.MD4, Options{Fallback: true}},
	}
	for _, im := range impls {
		for _, n := range []int{2 << 10, 4 << 10, 64 << 10} {
			for _, g := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%dKiB/g%d", im.name, n>>10, g), func(b *testing.B) {
					h := newBenchHasher(b, im.alg, im.opts)
					if (im.name == "lanes" || im.name == "md5simd") && !h.Lanes() {
						b.Skip("no lanes on this CPU")
					}
					if im.name == "md5simd" {
						h.x8 = false
					}
					runBench(b, h, g, benchData(g, benchBatch, n))
				})
			}
		}
	}
}

// BenchmarkStrategy compares feeding a lane set from the calling goroutine
// (write 16, then sum 16) with one goroutine per hasher, per block size.
// Servers equals goroutines.
func BenchmarkStrategy(b *testing.B) {
	if !Available() {
		b.Skip("no lanes on this CPU")
	}
	for _, st := range []struct {
		name string
		s    strategy
	}{{"writer", strategyWriter}, {"spawn", strategySpawn}} {
		for _, n := range []int{2 << 10, 4 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20} {
			for _, g := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%dKiB/g%d", st.name, n>>10, g), func(b *testing.B) {
					h := newBenchHasher(b, strong.MD5, Options{Servers: g})
					h.strat = st.s
					count := benchBatch
					if n > 64<<10 {
						count = 16
					}
					runBench(b, h, g, benchData(g, count, n))
				})
			}
		}
	}
}

// BenchmarkSmallBatch finds the batch size below which crypto/md5 beats
// the lanes: one goroutine, one server, k blocks of n bytes per call.
func BenchmarkSmallBatch(b *testing.B) {
	if !Available() {
		b.Skip("no lanes on this CPU")
	}
	for _, n := range []int{512, 1 << 10, 2 << 10, 4 << 10} {
		for _, k := range []int{1, 2, 3, 4, 6, 8, 12, 16} {
			for _, name := range []string{"lanes", "md5"} {
				b.Run(fmt.Sprintf("%dB/k%d/%s", n, k, name), func(b *testing.B) {
					h := newBenchHasher(b, strong.MD5, Options{Servers: 1, Fallback: name == "md5"})
					h.minLaneBlocks, h.minLaneMean = 1, 0
					runBench(b, h, 1, benchData(1, k, n))
				})
			}
		}
	}
}
