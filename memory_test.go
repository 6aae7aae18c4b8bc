package zsyncpipe

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// The memory a sync needs, by what it holds (docs/performance.md, "Memory
// budget"): per target block, the control file's records and the index;
// per scanning worker, a segment buffer; and a fixed part (md5-simd
// servers, fetch and verify buffers, the pipeline).
const (
	memBlocksize = 4096
	memWorkers   = 2
	memSegment   = 1 << 20 // stages' default segment size
	// memPerBlock bounds the bytes allocated per target block: the records
	// (9 B), the index (≈ 60 B and the transient tables of its build),
	// the matches (8 B), the patcher's and the verifier's bits.
	memPerBlock = 160
	// memFixed bounds everything else allocated: two md5-simd servers
	// (3 MiB), eight fetch calls' verification buffers (64 KiB each), the
	// verifier's read buffers, the rolling-sum buffers of the scanners,
	// the resume state, the pipeline. Measured: 4.2 MB.
	memFixed = 6 << 20
)

// memPair writes a seed and returns it with the control file of a target
// of size bytes that shares all but every fourth 64 KiB piece with it, and
// a source serving the target.
func memPair(tb testing.TB, size int) (seed string, f *control.File, src source.RangeSource) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(9, uint64(size)))
	target := make([]byte, size)
	for i := range target {
		target[i] = byte(rng.Uint32())
	}
	old := bytes.Clone(target)
	for off := 0; off+64<<10 <= size; off += 4 * 64 << 10 {
		for i := off; i < off+64<<10; i++ {
			old[i] = byte(rng.Uint32())
		}
	}
	dir := tb.TempDir()
	seed, path := filepath.Join(dir, "seed"), filepath.Join(dir, "target")
	if err := os.WriteFile(seed, old, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, target, 0o644); err != nil {
		tb.Fatal(err)
	}
	f, err := Make(context.Background(), bytes.NewReader(target), MakeOptions{Filename: "target", Blocksize: memBlocksize})
	if err != nil {
		tb.Fatal(err)
	}
	// The target is served from its file, so that the test's own data
	// does not fill the heap the sync is measured in.
	fh, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fh.Close() })
	return seed, f, source.ReaderAt{R: fh}
}

// memSync syncs the pair into a fresh output and returns the bytes
// allocated on the heap during the sync and the fetched bytes.
func memSync(tb testing.TB, seed string, f *control.File, src source.RangeSource) (allocated uint64, fetched int64) {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "out")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sum, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Seeds: []string{seed}, Source: src, Workers: memWorkers, NoFsync: true})
	runtime.ReadMemStats(&after)
	if err != nil {
		tb.Fatal(err)
	}
	return after.TotalAlloc - before.TotalAlloc, sum.Fetched
}

// heapPeak samples the heap while fn runs and returns the most it held in
// objects (live or not yet collected) beyond what it held before. Sampling
// can miss a peak, never invent one.
func heapPeak(fn func()) (peak uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	// Twice: a sync.Pool that was used stays reachable (from the runtime's
	// list of pools) until the second collection after, and with it the
	// struct that holds it — a previous sync's scan state.
	runtime.GC()
	runtime.GC()
	metrics.Read(s)
	base := s[0].Value.Uint64()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64()-min(base, s[0].Value.Uint64()))

			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	return peak
}

// A sync allocates what its budget says and no more: the per-block index,
// a segment buffer per worker and a fixed part — not, for instance, a copy
// of every fetched byte (which it once made, 77 MB of garbage on a 244 MB
// target), nor a segment buffer per segment. The count of bytes allocated
// does not depend on timing, so the bound can be tight without making the
// test flaky. And once the sync returns, what it allocated can be
// collected: nothing stays behind.
func TestSyncMemory(t *testing.T) {
	const size = 16 << 20
	seed, f, src := memPair(t, size)
	blocks := uint64(f.Blocks())
	runtime.GC()
	runtime.GC() // see heapPeak
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	allocated, fetched := memSync(t, seed, f, src)
	budget := blocks*memPerBlock + memWorkers*(memSegment+2*memBlocksize) + memFixed
	t.Logf("%d blocks, %d bytes fetched: %d bytes allocated, budget %d", blocks, fetched, allocated, budget)
	if fetched < size/8 {
		t.Fatalf("only %d bytes fetched: the pair does not exercise the fetch", fetched)
	}
	if allocated > budget {
		t.Errorf("a sync of %d blocks allocated %d bytes, over its budget of %d", blocks, allocated, budget)
	}
	runtime.GC()
	runtime.GC()
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	if end.HeapAlloc > base.HeapAlloc+1<<20 {
		t.Errorf("after the sync the heap holds %d bytes more than before", end.HeapAlloc-base.HeapAlloc)
	}
}

// BenchmarkSyncMemory reports the memory of a sync of a 64 MiB target
// from a local seed (a quarter of it fetched), with the collector set as
// the command sets it (GOGC 10): bytes allocated per sync, and the peak of
// the heap in objects (what the resident set follows), sampled every
// millisecond. The resident set of the command on real pairs is measured
// by bench/realpair.sh (docs/performance.md, "Memory budget").
func BenchmarkSyncMemory(b *testing.B) {
	seed, f, src := memPair(b, 64<<20)
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	b.SetBytes(f.Length)
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		peak = max(peak, heapPeak(func() { memSync(b, seed, f, src) }))
	}
	b.ReportMetric(float64(peak), "peak-heap-B")
}
