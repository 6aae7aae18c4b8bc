package simd

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

func TestMain(m *testing.M) {
	// md5-simd's server goroutines must all be gone once every Hasher a
	// test created has been closed.
	goleak.VerifyTestMain(m)
}

// testLengths are the block lengths the correctness tests mix.
var testLengths = []int{0, 1, 63, 64, 65, 127, 128, 2048, 4096, 4097, 65536, 1 << 20}

// reference computes the full digest of b with the standard implementation.
func reference(t testing.TB, alg strong.Algorithm, b []byte) []byte {
	t.Helper()
	switch alg {
	case strong.MD4:
		h := strong.MD4.New()
		h.Write(b)
		return h.Sum(nil)
	case strong.MD5:
		d := md5.Sum(b)
		return d[:]
	case strong.SHA224:
		d := sha256.Sum224(b)
		return d[:]
	}
	t.Fatalf("reference: unknown algorithm %v", alg)
	return nil
}

// randomBlocks returns n blocks whose lengths are drawn from lengths.
func randomBlocks(r *rand.Rand, n int, lengths []int) [][]byte {
	blocks := make([][]byte, n)
	for i := range blocks {
		b := make([]byte, lengths[r.IntN(len(lengths))])
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		blocks[i] = b
	}
	return blocks
}

// checkSums hashes blocks with h at the given size and compares each digest
// with the reference. It also checks that SumBlocks leaves bytes after
// len(blocks)*size alone.
func checkSums(t *testing.T, h *Hasher, size int, blocks [][]byte) {
	t.Helper()
	const guard = 7
	out := make([]byte, len(blocks)*size+guard)
	for i := range out {
		out[i] = 0xa5
	}
	h.SumBlocks(out[:len(blocks)*size:len(blocks)*size], size, blocks)
	for i, b := range blocks {
		want := reference(t, h.Algorithm(), b)[:size]
		if got := out[i*size : (i+1)*size]; !bytes.Equal(got, want) {
			t.Fatalf("%v lanes=%v size=%d: block %d of %d (len %d): got %x, want %x",
				h.Algorithm(), h.Lanes(), size, i, len(blocks), len(b), got, want)
		}
	}
	if !bytes.Equal(out[len(blocks)*size:], bytes.Repeat([]byte{0xa5}, guard)) {
		t.Fatalf("SumBlocks wrote past len(blocks)*size")
	}
}

// hasherConfig names a way to build a Hasher for the tests.
type hasherConfig struct {
	name  string
	alg   strong.Algorithm
	opts  Options
	lanes bool // whether Lanes must be true (when the CPU has them)
	force bool // send every group, however small, through the lanes
	noX8  bool // md5-simd's lanes only, not md5x8
}

func configs() []hasherConfig {
	return []hasherConfig{
		{name: "MD5-lanes", alg: strong.MD5, lanes: true},
		{name: "MD5-lanes-1server", alg: strong.MD5, opts: Options{Servers: 1}, lanes: true},
		{name: "MD5-lanes-forced", alg: strong.MD5, opts: Options{Servers: 2}, lanes: true, force: true},
		{name: "MD5-md5simd", alg: strong.MD5, opts: Options{Servers: 2}, lanes: true, noX8: true},
		{name: "MD5-fallback", alg: strong.MD5, opts: Options{Fallback: true}},
		{name: "MD4", alg: strong.MD4, lanes: true},
		{name: "SHA224", alg: strong.SHA224},
	}
}

func newTestHasher(t *testing.T, c hasherConfig) *Hasher {
	t.Helper()
	h, err := NewHasher(c.alg, c.opts)
	if err != nil {
		t.Fatalf("NewHasher(%v, %+v): %v", c.alg, c.opts, err)
	}
	if want := c.lanes && Available(); h.Lanes() != want {
		t.Fatalf("NewHasher(%v, %+v).Lanes() = %v, want %v", c.alg, c.opts, h.Lanes(), want)
	}
	if h.Algorithm() != c.alg {
		t.Fatalf("Algorithm() = %v, want %v", h.Algorithm(), c.alg)
	}
	if c.force {
		h.minLaneBlocks, h.minLaneMean = 1, 0
	}
	if c.noX8 {
		h.x8 = false
	}
	t.Cleanup(func() { closeWithin(t, h, 10*time.Second) })
	return h
}

// closeWithin closes h and fails the test if Close takes longer than d.
func closeWithin(t testing.TB, h *Hasher, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("Close did not return within %v", d)
	}
}

func TestSumBlocksLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range configs() {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHasher(t, c)
			// Every length alone, in groups below and above the lane
			// thresholds, and a full group of 16.
			for _, n := range testLengths {
				for _, count := range []int{1, 3, 4, 16, 17} {
					checkSums(t, h, c.alg.Size(), randomBlocks(r, count, []int{n}))
				}
			}
			// All lengths mixed in one batch.
			checkSums(t, h, c.alg.Size(), randomBlocks(r, 40, testLengths))
		})
	}
}

func TestSumBlocksBatchSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	small := []int{0, 1, 63, 64, 65, 100, 2048, 4096}
	for _, c := range configs() {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHasher(t, c)
			for n := 0; n <= 40; n++ {
				checkSums(t, h, c.alg.Size(), randomBlocks(r, n, small))
			}
		})
	}
}

func TestSumBlocksTruncated(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range configs() {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHasher(t, c)
			blocks := randomBlocks(r, 21, []int{0, 65, 2048, 4096})
			for size := 1; size <= c.alg.Size(); size++ {
				checkSums(t, h, size, blocks)
			}
		})
	}
}

// TestSumBlocksStrategies forces each way of feeding the lanes and each
// small-batch threshold, so that all code paths are checked whatever the
// defaults are.
func TestSumBlocksStrategies(t *testing.T) {
	if !Available() {
		t.Skip("CPU has no md5-simd lanes")
	}
	r := rand.New(rand.NewPCG(7, 8))
	blocks := randomBlocks(r, 37, testLengths)
	for _, st := range []strategy{strategyAuto, strategyWriter, strategySpawn} {
		for _, minLane := range []int{1, 2, 3, 16} {
			t.Run(fmt.Sprintf("strategy=%d/min=%d", st, minLane), func(t *testing.T) {
				h := newTestHasher(t, hasherConfig{alg: strong.MD5, opts: Options{Servers: 1}, lanes: true, noX8: true})
				h.strat, h.minLaneBlocks, h.minLaneMean = st, minLane, 0
				for n := 1; n <= len(blocks); n += 4 {
					checkSums(t, h, 16, blocks[:n])
				}
			})
		}
	}
}

// TestLanesUsed checks that batches worth it do go through the lanes and
// small ones do not.
func TestLanesUsed(t *testing.T) {
	if !Available() {
		t.Skip("CPU has no md5-simd lanes")
	}
	r := rand.New(rand.NewPCG(14, 15))
	for _, tc := range []struct {
		count, n int
		lanes    bool
		md5simd  bool // md5-simd's servers instead of md5x8
	}{
		{16, 4096, true, false},
		{64, 2048, true, false},
		{4, 65536, true, false},
		{3, 65536, false, false},
		{16, 1024, true, false}, // md5x8 has no cost per block
		{1, 1 << 20, false, false},
		{16, 4096, true, true},
		{64, 2048, true, true},
		{4, 65536, true, true},
		{3, 65536, false, true},
		{16, 1024, false, true},
		{1, 1 << 20, false, true},
	} {
		h := newTestHasher(t, hasherConfig{alg: strong.MD5, opts: Options{Servers: 1}, lanes: true, noX8: tc.md5simd})
		before := h.laneCalls.Load()
		checkSums(t, h, 16, randomBlocks(r, tc.count, []int{tc.n}))
		if used := h.laneCalls.Load() > before; used != tc.lanes {
			t.Errorf("%d blocks of %d bytes (md5-simd %v): lanes used = %v, want %v", tc.count, tc.n, tc.md5simd, used, tc.lanes)
		}
	}
}

func TestNoSIMDEnv(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	blocks := randomBlocks(r, 20, []int{1, 64, 4096})
	for _, v := range []string{"1", "true", "TRUE", "yes", " Yes "} {
		t.Run("on="+v, func(t *testing.T) {
			t.Setenv(EnvNoSIMD, v)
			h := newTestHasher(t, hasherConfig{alg: strong.MD5})
			checkSums(t, h, 16, blocks)
		})
	}
	for _, v := range []string{"", "0", "false", "no", "junk"} {
		t.Run("off="+v, func(t *testing.T) {
			t.Setenv(EnvNoSIMD, v)
			h := newTestHasher(t, hasherConfig{alg: strong.MD5, lanes: true})
			checkSums(t, h, 16, blocks)
		})
	}
}

func TestMD4Vectors(t *testing.T) {
	// RFC 1320, appendix A.5.
	vectors := []struct{ in, want string }{
		{"", "31d6cfe0d16ae931b73c59d7e0c089c0"},
		{"a", "bde52cb31de33e46245e05fbdbd6fb24"},
		{"abc", "a448017aaf21d8525fc10ae87aa6729d"},
		{"message digest", "d9130a8164549fe818874806e1c7014b"},
		{"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"},
		{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", "e33b4ddc9c38f2199c3e7b164fcc0536"},
	}
	h := newTestHasher(t, hasherConfig{alg: strong.MD4, lanes: true})
	blocks := make([][]byte, len(vectors))
	for i, v := range vectors {
		blocks[i] = []byte(v.in)
	}
	out := make([]byte, len(blocks)*16)
	h.SumBlocks(out, 16, blocks)
	for i, v := range vectors {
		if got := hex.EncodeToString(out[i*16 : (i+1)*16]); got != v.want {
			t.Errorf("MD4(%q) = %s, want %s", v.in, got, v.want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	for _, c := range configs() {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHasher(t, c)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 11))
					for range 6 {
						blocks := randomBlocks(r, 1+r.IntN(40), []int{0, 63, 65, 2048, 4096, 65536 + 3})
						out := make([]byte, len(blocks)*c.alg.Size())
						h.SumBlocks(out, c.alg.Size(), blocks)
						for i, b := range blocks {
							if want := reference(t, c.alg, b); !bytes.Equal(out[i*len(want):(i+1)*len(want)], want) {
								t.Errorf("goroutine %d: block %d (len %d) digest mismatch", g, i, len(b))
								return
							}
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestCloseWhileBusy closes a Hasher while other goroutines are in
// SumBlocks: Close must wait for them, and every result must be correct.
func TestCloseWhileBusy(t *testing.T) {
	h, err := NewHasher(strong.MD5, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(12, 13))
	blocks := randomBlocks(r, 32, []int{4096})
	want := make([]byte, 32*16)
	for i, b := range blocks {
		copy(want[i*16:], reference(t, strong.MD5, b))
	}
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				out := make([]byte, len(want))
				h.SumBlocks(out, 16, blocks)
				once.Do(func() { close(started) })
				if !bytes.Equal(out, want) {
					t.Error("digest mismatch around Close")
					return
				}
			}
		})
	}
	<-started
	closeWithin(t, h, 10*time.Second)
	if h.Lanes() {
		t.Error("Lanes() = true after Close")
	}
	wg.Wait()
	closeWithin(t, h, time.Second) // a second Close is harmless
	goleak.VerifyNone(t)
}

func TestCloseUnused(t *testing.T) {
	for _, c := range configs() {
		h, err := NewHasher(c.alg, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		closeWithin(t, h, 10*time.Second)
	}
	goleak.VerifyNone(t)
}

func TestNewHasherErrors(t *testing.T) {
	for _, alg := range []strong.Algorithm{0, strong.SHA224 + 1, 255} {
		if h, err := NewHasher(alg, Options{}); err == nil {
			h.Close()
			t.Errorf("NewHasher(%v) succeeded, want error", alg)
		}
	}
	for _, n := range []int{-1, maxServers + 1} {
		if h, err := NewHasher(strong.MD5, Options{Servers: n}); err == nil {
			h.Close()
			t.Errorf("NewHasher(MD5, Servers: %d) succeeded, want error", n)
		}
	}
}

func TestSumBlocksBadArguments(t *testing.T) {
	h := newTestHasher(t, hasherConfig{alg: strong.MD5, lanes: true})
	blocks := [][]byte{{1}, {2}}
	for _, tc := range []struct {
		name string
		out  []byte
		size int
	}{
		{"size 0", make([]byte, 32), 0},
		{"size too large", make([]byte, 64), 17},
		{"out too short", make([]byte, 31), 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("SumBlocks did not panic")
				}
			}()
			h.SumBlocks(tc.out, tc.size, blocks)
		})
	}
	// The Hasher still works after a rejected call.
	checkSums(t, h, 16, randomBlocks(rand.New(rand.NewPCG(1, 1)), 16, []int{64}))
}
