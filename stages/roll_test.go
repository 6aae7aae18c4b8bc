package stages

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
)

// The vector kernels (roll_amd64.s) against the Go loops they replace, on
// every length edge; without AVX2 both sides are the Go loops and the
// tests check the dispatch only.

// rollLengths are the numbers of windows rolled at once: around the vector
// step (16) and around the roller's chunk.
var rollLengths = []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 255, 256, 257,
	rollChunk - 17, rollChunk - 16, rollChunk - 1, rollChunk, rollChunk + 1, rollChunk + 16, rollChunk + 17}

// checkRoll compares rollSums with rollSumsGo on buf, windows of bs bytes.
func checkRoll(t *testing.T, buf []byte, bs int, n int, mask, a, b uint32) {
	t.Helper()
	want := make([]uint32, n)
	got := make([]uint32, n)
	wa, wb := rollSumsGo(buf[:n], buf[bs:bs+n], want, a, b, uint32(bs), mask)
	ga, gb := rollSums(buf[:n], buf[bs:bs+n], got, a, b, uint32(bs), mask)
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("bs %d n %d mask %#x: window %d sum %#x, want %#x", bs, n, mask, i, got[i], want[i])
	}
	if ga&0xffff != wa&0xffff || gb&0xffff != wb&0xffff {
		t.Fatalf("bs %d n %d mask %#x: sums after %#x %#x, want %#x %#x", bs, n, mask, ga, gb, wa, wb)
	}
}

func firstDiff(got, want []uint32) int {
	for i := range want {
		if got[i] != want[i] {
			return i
		}
	}
	return -1
}

func TestRollSumsVector(t *testing.T) {
	t.Logf("AVX2: %v", hasAVX2)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rsumBytes := range []int{1, 2, 3, 4} {
		mask := control.RsumMask(rsumBytes)
		for _, bs := range []int{1, 7, 16, 64, 2048, 4096, 65536, 1<<20 + 3} {
			for _, n := range rollLengths {
				if bs > 4096 && n > 300 {
					continue // enough of the large blocks
				}
				for _, fill := range []string{"random", "zero", "ff"} {
					buf := randData(uint64(bs*1000+n), n+bs)
					switch fill {
					case "zero":
						clear(buf)
					case "ff":
						for i := range buf {
							buf[i] = 0xff
						}
					}
					// From the window's true sums, and from arbitrary ones
					// (the roll must not care, and 32-bit carries in the
					// high halves must not show).
					s := rollsum.Block(buf[:bs])
					checkRoll(t, buf, bs, n, mask, uint32(s.A), uint32(s.B))
					checkRoll(t, buf, bs, n, mask, rng.Uint32(), rng.Uint32())
				}
			}
		}
	}
}

// TestRollSumsWindows checks the sums against rollsum.Block of each window,
// through the roller as the scanner uses it.
func TestRollSumsWindows(t *testing.T) {
	for _, bs := range []int{1, 16, 100, 4096} {
		for _, seq := range []int{1, 2} {
			buf := randData(uint64(bs), 3*rollChunk+seq*bs+5)
			r := newRoller(buf, bs, seq, 0xffffffff, nil)
			r.reset(0)
			for r.base+r.chunk+(seq-1)*bs+bs <= len(buf) {
				m := r.chunk + (seq-1)*bs
				r.fill(m)
				for _, i := range []int{0, 1, 15, 16, 17, m / 2, m - 1} {
					if want := rollsum.Block(buf[r.base+i : r.base+i+bs]).Packed(); r.sums[i] != want {
						t.Fatalf("bs %d seq %d: window %d: %#x, want %#x", bs, seq, r.base+i, r.sums[i], want)
					}
				}
				r.advance(r.chunk)
			}
		}
	}
}

// probeIndex returns an index with filters only: the first of 2^bits bits
// (at least one word), about one in density set (three bits a key, in one
// word), the second of 2^bits2 bits (at least two words), about one in
// density2 set.
func probeIndex(rng *rand.Rand, bits uint, density int, bits2 uint, density2 int) *index {
	wbits := max(bits, 5) - 5
	bloom := make([]uint32, 1<<wbits)
	for range max(1<<bits/density/3, 1) {
		_, m := bloomOf(rng.Uint64(), 32)
		bloom[rng.Uint64N(1<<wbits)] |= m
	}
	wbits2 := max(bits2, 6) - 5
	bloom2 := make([]uint32, 1<<wbits2)
	for range max(1<<bits2/density2/3, 1) {
		_, m := bloom2Of(rng.Uint64(), 63)
		bloom2[rng.Uint64N(1<<wbits2)] |= m
	}
	return &index{bloom: bloom, bloomShift: 32 - wbits, bloom2: bloom2, bloom2Shift: 64 - wbits2}
}

func TestProbeVector(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 300
	for _, bits := range []uint{1, 5, 8, 12, 21, 27} {
		for _, density := range []int{2, 16, 100, 1 << 30} {
			if bits > 21 && density < 100 {
				continue // slow to fill, and nothing new
			}
			ix := probeIndex(rng, bits, density, min(bits, 20), 3)
			for _, rsumBytes := range []int{1, 2, 3, 4} {
				mask := control.RsumMask(rsumBytes)
				s0 := make([]uint32, n)
				s1 := make([]uint32, n)
				for i := range s0 {
					s0[i], s1[i] = rng.Uint32()&mask, rng.Uint32()&mask
				}
				lasts := []uint64{1 << 32, uint64(s0[n/2]), uint64(s0[3]), uint64(s0[n-1])}
				name := fmt.Sprintf("bits%d/density%d/rsum%d", bits, density, rsumBytes)
				for _, from := range probeStarts(n) {
					for _, l := range []int{0, 1, 7, 8, 9, 15, 16, 17, n - from} {
						to := min(from+l, n)
						for _, last := range lasts {
							got := probe2(s0[from:to], s1[from:to], ix, last)
							want := probe2Go(s0[from:to], s1[from:to], ix, last)
							if got != want {
								t.Fatalf("%s: probe2 of [%d:%d] last %#x = %d, want %d", name, from, to, last, got, want)
							}
						}
						if got, want := probe1(s0[from:to], ix), probe1Go(s0[from:to], ix); got != want {
							t.Fatalf("%s: probe1 of [%d:%d] = %d, want %d", name, from, to, got, want)
						}
						if got, want := probe2Go(s0[from:to], s1[from:to], ix, 1<<32), probeRef(s0[from:to], s1[from:to], ix); got != want {
							t.Fatalf("%s: probe2Go of [%d:%d] = %d, want %d (index.maybe)", name, from, to, got, want)
						}
						if got, want := probe1Go(s0[from:to], ix), probeRef(s0[from:to], nil, ix); got != want {
							t.Fatalf("%s: probe1Go of [%d:%d] = %d, want %d (index.maybe)", name, from, to, got, want)
						}
					}
				}
			}
		}
	}
}

// probeRef is probe2Go (probe1Go when s1 is nil) without last, written
// with index.maybe.
func probeRef(s0, s1 []uint32, ix *index) int {
	for i, x := range s0 {
		key := uint64(x)
		if s1 != nil {
			key = key<<32 | uint64(s1[i])
		}
		if ix.maybe(key) {
			return i
		}
	}
	return len(s0)
}

// probeStarts returns the offsets of s0 that TestProbeVector starts from:
// every lane alignment at the start, in the middle and at the end.
func probeStarts(n int) []int {
	var out []int
	for _, at := range []int{0, n/2 - 8, n - 24} {
		for i := range 24 {
			out = append(out, at+i)
		}
	}
	return out
}

// TestIndexProbesAgree checks that every key the index holds passes the
// probes, at every lane: the table is built with the hash they compute.
func TestIndexProbesAgree(t *testing.T) {
	for _, hl := range []control.HashLengths{
		{SeqMatches: 1, RsumBytes: 1, StrongBytes: 16}, {SeqMatches: 1, RsumBytes: 4, StrongBytes: 16},
		{SeqMatches: 2, RsumBytes: 2, StrongBytes: 4}, {SeqMatches: 2, RsumBytes: 3, StrongBytes: 5},
	} {
		for _, blocks := range []int{1, 2, 100, 5000} {
			f := makeControl(t, randData(uint64(blocks), blocks*64), 64, hl)
			ix, err := newIndex(f)
			if err != nil {
				t.Fatal(err)
			}
			var s0, s1 []uint32
			for i := 0; i+ix.seq <= blocks; i++ {
				s0 = append(s0, ix.rsum[i])
				if ix.seq == 2 {
					s1 = append(s1, ix.rsum[i+1])
				}
			}
			for i := range s0 {
				var got int
				if ix.seq == 2 {
					got = probe2(s0[i:], s1[i:], ix, 1<<32)
				} else {
					got = probe1(s0[i:], ix)
				}
				if got != 0 {
					t.Fatalf("%+v, %d blocks: key of block %d does not pass the probe (%d)", hl, blocks, i, got)
				}
			}
		}
	}
}

// FuzzRollProbe compares the kernels with the Go loops on arbitrary data.
func FuzzRollProbe(f *testing.F) {
	f.Add([]byte("hello, world: a rolling checksum over some bytes"), uint32(4), uint8(2), uint32(0), uint32(0), uint8(10))
	f.Add(make([]byte, 100), uint32(16), uint8(4), uint32(0xffff), uint32(7), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, bs uint32, rsumBytes uint8, a, b uint32, bits uint8) {
		bs = bs%64 + 1
		if len(data) < int(bs) {
			return
		}
		n := len(data) - int(bs)
		mask := control.RsumMask(int(rsumBytes%4) + 1)
		checkRoll(t, data, int(bs), n, mask, a, b)
		sums := make([]uint32, n)
		rollSumsGo(data[:n], data[bs:], sums, a, b, bs, mask)
		rng := rand.New(rand.NewPCG(uint64(a), uint64(b)))
		ix := probeIndex(rng, uint(bits%27)+1, 8, uint(bits%20)+1, 2)
		half := n / 2
		last := uint64(1) << 32
		if half > 0 {
			last = uint64(sums[half/2])
		}
		if got, want := probe2(sums[:half], sums[half:2*half], ix, last), probe2Go(sums[:half], sums[half:2*half], ix, last); got != want {
			t.Fatalf("probe2 = %d, want %d", got, want)
		}
		if got, want := probe1(sums, ix), probe1Go(sums, ix); got != want {
			t.Fatalf("probe1 = %d, want %d", got, want)
		}
	})
}

// BenchmarkScanKernel is the rolling scan's inner loop alone, as scanner.scan
// runs it over data that matches nothing: roll the checksums of a chunk,
// probe the bit table, and count the positions it lets through (which the
// scan would check further). The seed is the unrelated 64 MiB of
// BenchmarkDelta, the index that of its target (4 KiB blocks, seq_matches
// 2), or the same target with seq_matches 1; "go" forces the Go loops.
//
//	go test -run '^$' -bench ScanKernel -count 3 ./stages
func BenchmarkScanKernel(b *testing.B) {
	target, _, seed := benchData()
	for _, seq := range []int{2, 1} {
		f := benchControl()
		if seq == 1 {
			f = makeControl(b, target, benchBS, control.HashLengths{SeqMatches: 1, RsumBytes: 4, StrongBytes: 16})
		}
		ix, err := newIndex(f)
		if err != nil {
			b.Fatal(err)
		}
		for _, kernel := range []string{"vector", "go"} {
			b.Run(fmt.Sprintf("seq%d/%s", seq, kernel), func(b *testing.B) { benchScanKernel(b, kernel, seed, ix) })
		}
	}
}

// scanKernel rolls through buf as scanner.scan does where nothing matches
// and returns how many positions passed the probe.
func scanKernel(buf []byte, ix *index) int {
	bs := ix.bs
	last := uint64(1) << 32
	if ix.last >= 0 {
		last = uint64(ix.rsum[ix.last])
	}
	look := (ix.seq - 1) * bs
	end := len(buf) - ix.seq*bs
	r := newRoller(buf, bs, ix.seq, ix.mask, nil)
	r.reset(0)
	passed := 0
	for r.base < end {
		n := min(r.chunk, end-r.base)
		r.fill(n + look)
		for i := 0; i < n; i++ {
			if ix.seq == 2 {
				i += probe2(r.sums[i:n], r.sums[i+bs:n+bs], ix, last)
			} else {
				i += probe1(r.sums[i:n], ix)
			}
			if i < n {
				passed++
			}
		}
		r.advance(n)
	}
	return passed
}

// treeControl returns a control file of blocks random records of bs bytes
// with Hash-Lengths 2,2,4, as zsyncpipe mirror's index over every changed
// file of a tree has them (go1.22.12 → go1.24.5: about 80,000 blocks of
// 2 KiB, 16-bit rolling checksums).
func treeControl(blocks, bs int) *control.File {
	rng := rand.New(rand.NewPCG(uint64(blocks), uint64(bs)))
	c := control.Checksums{RsumBytes: 2, StrongBytes: 4, Rsum: make([]uint32, blocks), Strong: make([]byte, 4*blocks)}
	for i := range c.Rsum {
		c.Rsum[i] = rng.Uint32() & control.RsumMask(2)
	}
	for i := range c.Strong {
		c.Strong[i] = byte(rng.Uint32())
	}
	return &control.File{
		Header: control.Header{Blocksize: bs, Length: int64(blocks * bs),
			HashLengths: control.HashLengths{SeqMatches: 2, RsumBytes: 2, StrongBytes: 4}},
		Checksums: c,
	}
}

// BenchmarkScanKernelTree is BenchmarkScanKernel with the index of a tree
// mirror's scan (treeControl: 80,000 blocks of 2 KiB, seq_matches 2,
// 16-bit rolling checksums), whose bit tables are the largest the scan
// meets in practice.
//
//	go test -run '^$' -bench ScanKernelTree -count 6 ./stages
func BenchmarkScanKernelTree(b *testing.B) {
	_, _, seed := benchData()
	ix, err := newIndex(treeControl(80000, 2048))
	if err != nil {
		b.Fatal(err)
	}
	for _, kernel := range []string{"vector", "go"} {
		b.Run(kernel, func(b *testing.B) { benchScanKernel(b, kernel, seed, ix) })
	}
}

// TestBloomFilter checks the filters' sizes and how many keys they do not
// hold they let through, on the keys of tree mirrors (16-bit rolling
// checksums, whose pairs span only 32 bits): the first at most 256 KiB up
// to 2^17 keys, with about 0.3-1.1 % of other keys passing at one or two
// keys per word, 1-4 % at two to four; the second half of that at
// most, letting through at most 20 %, and the two independent.
func TestBloomFilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		blocks   int
		maxBytes int
		maxPass  float64 // fraction of random keys
	}{
		{1000, 2 << 10, 0.015},
		{65537, 256 << 10, 0.006},
		{80000, 256 << 10, 0.008},
		{131071, 256 << 10, 0.015},
		{200000, 256 << 10, 0.04},
	} {
		ix, err := newIndex(treeControl(tc.blocks, 2048))
		if err != nil {
			t.Fatal(err)
		}
		if size := 4 * len(ix.bloom); size > tc.maxBytes {
			t.Errorf("%d blocks: filter of %d bytes, want at most %d", tc.blocks, size, tc.maxBytes)
		}
		if size := 4 * len(ix.bloom2); size > tc.maxBytes/2 {
			t.Errorf("%d blocks: second filter of %d bytes, want at most %d", tc.blocks, size, tc.maxBytes/2)
		}
		const tries = 1 << 20
		passed, passed2, both := 0, 0, 0
		for range tries {
			key := uint64(rng.Uint32()&0xffff)<<32 | uint64(rng.Uint32()&0xffff)
			w2, m2 := bloom2Of(key, ix.bloom2Shift)
			in1, in2 := ix.bloomHas(key), ix.bloom2[w2]&m2 == m2
			if in1 {
				passed++
			}
			if in2 {
				passed2++
			}
			if in1 && in2 != ix.maybe(key) || !in1 && ix.maybe(key) {
				t.Fatalf("%d blocks: maybe(%#x) disagrees with the filters", tc.blocks, key)
			}
			if in1 && in2 {
				both++
			}
		}
		f, f2, fb := float64(passed)/tries, float64(passed2)/tries, float64(both)/tries
		t.Logf("%d blocks: filters of %d and %d bytes, %.3f %% and %.3f %% of random keys pass, %.4f %% both",
			tc.blocks, 4*len(ix.bloom), 4*len(ix.bloom2), 100*f, 100*f2, 100*fb)
		if f > tc.maxPass {
			t.Errorf("%d blocks: %.2f %% of random keys pass the first filter, want at most %.2f %%", tc.blocks, 100*f, 100*tc.maxPass)
		}
		if f2 > 0.2 || fb > 2*f*f2+1e-4 {
			t.Errorf("%d blocks: %.2f %% of random keys pass the second filter, %.4f %% both", tc.blocks, 100*f2, 100*fb)
		}
	}
}

// benchScanKernel measures scanKernel over seed with ix, with the vector
// kernels or the Go ones, in MB per CPU second and the share of positions
// that pass the filters.
func benchScanKernel(b *testing.B, kernel string, seed []byte, ix *index) {
	if kernel == "vector" && !hasAVX2 {
		b.Skip("no AVX2")
	}
	defer func(v bool) { hasAVX2 = v }(hasAVX2)
	hasAVX2 = kernel == "vector"
	b.SetBytes(int64(len(seed)))
	var passed int
	cpu0 := processCPU()
	for b.Loop() {
		passed = scanKernel(seed, ix)
	}
	b.ReportMetric(100*float64(passed)/float64(len(seed)), "%passed")
	if cpu := (processCPU() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(b.N)*float64(len(seed))/1e6/cpu, "MB/cpu-s")
	}
}
