package stages

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// naiveChecksums computes the records of data the obvious way: each block
// zero-padded to bs, rollsum.Block masked to rsumBytes, the strong digest
// truncated to strongBytes.
func naiveChecksums(data []byte, bs int, alg strong.Algorithm, rsumBytes, strongBytes int) ([]uint32, []byte) {
	var rs []uint32
	var strong []byte
	for off := 0; off < len(data); off += bs {
		blk := make([]byte, bs)
		copy(blk, data[off:min(off+bs, len(data))])
		rs = append(rs, rollsum.Block(blk).Packed()&control.RsumMask(rsumBytes))
		h := alg.New()
		h.Write(blk)
		strong = append(strong, h.Sum(nil)[:strongBytes]...)
	}
	return rs, strong
}

// TestBlockChecksumsMatchesNaive compares BlockChecksums with a naive
// computation at the sizes where block arithmetic goes wrong: empty, one
// byte, one short of a block, a block, one past, several blocks, and a size
// that spans several read chunks.
func TestBlockChecksumsMatchesNaive(t *testing.T) {
	type layout struct {
		alg  strong.Algorithm
		opts simd.Options
		hl   control.HashLengths // zero: defaults
	}
	layouts := []layout{
		{alg: strong.MD5},
		{alg: strong.MD5, opts: simd.Options{Fallback: true}, hl: control.HashLengths{SeqMatches: 2, RsumBytes: 3, StrongBytes: 5}},
		{alg: strong.MD4, hl: control.HashLengths{SeqMatches: 1, RsumBytes: 4, StrongBytes: 16}},
		{alg: strong.MD4, hl: control.HashLengths{SeqMatches: 2, RsumBytes: 1, StrongBytes: 3}},
		{alg: strong.SHA224, hl: control.HashLengths{SeqMatches: 2, RsumBytes: 2, StrongBytes: 28}},
	}
	for _, bs := range []int{16, 512, 2048, 4096} {
		sizes := []int{0, 1, bs - 1, bs, bs + 1, 3 * bs, 7*bs + 5, 100 * bs}
		if bs == 4096 {
			sizes = append(sizes, (1<<20)+3*bs+17) // several 256 KiB chunks
		}
		for _, n := range sizes {
			data := randData(uint64(n*31+bs), n)
			for li, l := range layouts {
				t.Run(fmt.Sprintf("bs%d/n%d/%v-%d", bs, n, l.alg, li), func(t *testing.T) {
					h := newHasher(t, l.alg, l.opts)
					f, err := BlockChecksums(context.Background(), bytes.NewReader(data), ChecksumOptions{
						Blocksize: bs, HashLengths: l.hl, Algorithm: l.alg, Hasher: h,
						SHA1: true, SHA256: true, Workers: 2,
					})
					if err != nil {
						t.Fatal(err)
					}
					hl := l.hl
					if hl == (control.HashLengths{}) {
						hl = control.DefaultHashLengths(int64(n), bs)
					}
					if f.Blocksize != bs || f.Length != int64(n) || f.HashLengths != hl || f.StrongAlgorithm != l.alg {
						t.Fatalf("header: bs %d length %d hl %+v alg %v; want %d %d %+v %v",
							f.Blocksize, f.Length, f.HashLengths, f.StrongAlgorithm, bs, n, hl, l.alg)
					}
					s1, s256 := sha1.Sum(data), sha256.Sum256(data)
					if !bytes.Equal(f.SHA1, s1[:]) || !bytes.Equal(f.SHA256, s256[:]) {
						t.Errorf("file hashes %x %x, want %x %x", f.SHA1, f.SHA256, s1, s256)
					}
					c := f.Checksums
					if c.RsumBytes != hl.RsumBytes || c.StrongBytes != hl.StrongBytes {
						t.Errorf("checksums layout %d,%d, want %d,%d", c.RsumBytes, c.StrongBytes, hl.RsumBytes, hl.StrongBytes)
					}
					if int64(c.Len()) != f.Blocks() {
						t.Fatalf("%d records for %d blocks", c.Len(), f.Blocks())
					}
					rs, strong := naiveChecksums(data, bs, l.alg, hl.RsumBytes, hl.StrongBytes)
					for i := range rs {
						if c.Rsum[i] != rs[i] {
							t.Errorf("block %d: rsum %08x, want %08x", i, c.Rsum[i], rs[i])
						}
						if want := strong[i*hl.StrongBytes : (i+1)*hl.StrongBytes]; !bytes.Equal(c.StrongOf(i), want) {
							t.Errorf("block %d: strong %x, want %x", i, c.StrongOf(i), want)
						}
					}
					if len(c.Strong) != len(strong) {
						t.Errorf("strong bytes %d, want %d", len(c.Strong), len(strong))
					}
				})
			}
		}
	}
}

// TestBlockChecksumsFileHashSelection checks that only the requested
// whole-file hashes are computed and that the default block size follows
// Length.
func TestBlockChecksumsFileHashSelection(t *testing.T) {
	data := randData(1, 5000)
	for _, tc := range []struct{ sha1, sha256 bool }{{false, false}, {true, false}, {false, true}} {
		f, err := BlockChecksums(context.Background(), bytes.NewReader(data), ChecksumOptions{SHA1: tc.sha1, SHA256: tc.sha256})
		if err != nil {
			t.Fatal(err)
		}
		if (f.SHA1 != nil) != tc.sha1 || (f.SHA256 != nil) != tc.sha256 {
			t.Errorf("SHA1 %v SHA256 %v: got SHA1 %x SHA256 %x", tc.sha1, tc.sha256, f.SHA1, f.SHA256)
		}
		if f.Blocksize != 2048 || f.StrongAlgorithm != strong.MD5 {
			t.Errorf("defaults: bs %d alg %v, want 2048 MD5", f.Blocksize, f.StrongAlgorithm)
		}
	}
	f, err := BlockChecksums(context.Background(), bytes.NewReader(data), ChecksumOptions{Length: 200000000})
	if err != nil {
		t.Fatal(err)
	}
	if f.Blocksize != 4096 {
		t.Errorf("block size for a 200 MB Length hint: %d, want 4096", f.Blocksize)
	}
}

// TestBlockChecksumsRejects checks option validation.
func TestBlockChecksumsRejects(t *testing.T) {
	md4 := newHasher(t, strong.MD4, simd.Options{})
	for name, opts := range map[string]ChecksumOptions{
		"bs not a power of two": {Blocksize: 3000},
		"negative bs":           {Blocksize: -2048},
		"hasher mismatch":       {Algorithm: strong.MD5, Hasher: md4},
		"strong too long":       {HashLengths: control.HashLengths{SeqMatches: 1, RsumBytes: 4, StrongBytes: 17}},
		"rsum too long":         {HashLengths: control.HashLengths{SeqMatches: 1, RsumBytes: 5, StrongBytes: 16}},
		"unknown algorithm":     {Algorithm: strong.Algorithm(99)},
	} {
		if _, err := BlockChecksums(context.Background(), bytes.NewReader([]byte("x")), opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestChecksumStageResultTwice checks that the result function of
// ChecksumStage can be called more than once and gives the same records.
func TestChecksumStageResultTwice(t *testing.T) {
	data := randData(7, 10*1024+3)
	h := newHasher(t, strong.MD5, simd.Options{})
	p := pipeline.New(pipeline.Config{})
	result, err := ChecksumStage(p, bytes.NewReader(data), ChecksumOptions{Blocksize: 1024, Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := result()
	sa := bytes.Clone(a.Checksums.Strong)
	b := result()
	_, want := naiveChecksums(data, 1024, strong.MD5, a.Checksums.RsumBytes, a.Checksums.StrongBytes)
	if !bytes.Equal(sa, want) || !bytes.Equal(b.Checksums.Strong, want) || !bytes.Equal(a.Checksums.Strong, want) {
		t.Errorf("strong hashes differ between calls of the result function")
	}
}

// TestBlockChecksumsProgress checks that Progress ends at the input length.
func TestBlockChecksumsProgress(t *testing.T) {
	data := randData(3, 3<<20+5)
	var last int64
	_, err := BlockChecksums(context.Background(), bytes.NewReader(data), ChecksumOptions{
		Blocksize: 4096,
		Progress: func(n int64) {
			if n < last {
				t.Errorf("progress went back from %d to %d", last, n)
			}
			last = n
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) {
		t.Errorf("final progress %d, want %d", last, len(data))
	}
}

// TestBlockChecksumsLargeBlockMemory checks that a large block size does not
// make the reader allocate chunks of 64 blocks regardless of the input.
func TestBlockChecksumsLargeBlockMemory(t *testing.T) {
	const bs = control.MaxBlocksize // the largest a control file may have
	data := randData(9, 3*bs/2)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := BlockChecksums(context.Background(), bytes.NewReader(data), ChecksumOptions{Blocksize: bs, Workers: 1})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if f.Blocks() != 2 {
		t.Fatalf("%d blocks", f.Blocks())
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16*bs {
		t.Errorf("allocated %d MiB to checksum %d MiB", alloc>>20, len(data)>>20)
	}
	rs, strong := naiveChecksums(data, bs, strong.MD5, f.Checksums.RsumBytes, f.Checksums.StrongBytes)
	if fmt.Sprint(rs) != fmt.Sprint(f.Checksums.Rsum) || !bytes.Equal(strong, f.Checksums.Strong) {
		t.Errorf("records differ from the naive computation")
	}
}

// TestBlockChecksumsLengthHint: a Length hint that is wrong (the input grew
// or shrank since it was measured) changes nothing but the buffer sizes.
func TestBlockChecksumsLengthHint(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 31)
	}
	for _, n := range []int{0, 1, 2048, 4096, 9999, 10000} {
		for _, hint := range []int64{0, 1, 100, 2048, 5000, 10000, 1 << 20} {
			f, err := BlockChecksums(context.Background(), bytes.NewReader(data[:n]), ChecksumOptions{Blocksize: 2048, Length: hint, SHA256: true})
			if err != nil {
				t.Fatal(err)
			}
			rs, ss := naiveChecksums(data[:n], 2048, strong.MD5, f.Checksums.RsumBytes, f.Checksums.StrongBytes)
			sum := sha256.Sum256(data[:n])
			if f.Length != int64(n) || len(f.Checksums.Rsum) != len(rs) || !bytes.Equal(f.SHA256, sum[:]) {
				t.Fatalf("n=%d hint=%d: length %d, %d blocks (want %d)", n, hint, f.Length, len(f.Checksums.Rsum), len(rs))
			}
			for i := range rs {
				if f.Checksums.Rsum[i] != rs[i] {
					t.Fatalf("n=%d hint=%d: block %d differs", n, hint, i)
				}
			}
			if !bytes.Equal(f.Checksums.Strong, ss) {
				t.Fatalf("n=%d hint=%d: strong hashes differ", n, hint)
			}
		}
	}
}

// TestChecksumsGrew checks the guard behind the shortened digests: an input
// that grew past its length hint so far that it needs longer strong hashes
// than were kept is an error (ErrGrew), not a control file with wrong ones.
func TestChecksumsGrew(t *testing.T) {
	h := newHasher(t, strong.MD5, simd.Options{})
	c, err := newChecksummer(bytes.NewReader(nil), ChecksumOptions{Blocksize: 2048, Length: 1, Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	if c.keep >= strong.MD5.Size() {
		t.Fatalf("keep = %d: nothing saved", c.keep)
	}
	c.length = 1 << 20
	if err := c.checkKept(); err != nil {
		t.Fatalf("1 MiB after a hint of 1 byte: %v", err)
	}
	c.length = 1 << 62
	if err := c.checkKept(); !errors.Is(err, ErrGrew) {
		t.Fatalf("2^62 bytes after a hint of 1 byte: err = %v, want ErrGrew", err)
	}
}

// TestBlockChecksumsResume grows an input in steps and checks that a run
// resumed from the previous step's state makes the same control file as a
// run over the whole input, reading only the new part (and, for hash-chain
// states inside the prefix, less than a mark span each).
func TestBlockChecksumsResume(t *testing.T) {
	for _, tc := range []resumeCase{
		{"small-blocks", 16, false, []int{0, 1, 15, 16, 17, 100, 1000, 1001}},
		{"chain-span-fixed", 2048, false, []int{2<<20 + 5, 2<<20 + 2049, 3<<20 + 7}},
		{"chain-span-moves", 2048, false, []int{15<<20 + 5, 16<<20 + 4095}},
		{"legacy", 2048, true, []int{100, 3000, 1<<20 + 1, 2<<20 + 2048}},
		{"unchanged", 512, false, []int{5000, 5000, 5001, 5001}},
		randomGrowth(1, 64), randomGrowth(2, 4096), randomGrowth(3, 16),
	} {
		t.Run(tc.name, func(t *testing.T) {
			alg := strong.MD5
			if tc.legacy {
				alg = strong.MD4
			}
			h := newHasher(t, alg, simd.Options{})
			// Pseudo-random data with a period of 1 MiB + 7 bytes: cheap
			// to make even under the race detector, no two blocks alike.
			all := bytes.Repeat(randData(uint64(tc.bs), 1<<20+7), tc.sizes[len(tc.sizes)-1]/(1<<20)+1)[:tc.sizes[len(tc.sizes)-1]]
			var prev *ChecksumState
			for _, n := range tc.sizes {
				data := all[:n]
				opts := ChecksumOptions{Blocksize: tc.bs, Length: int64(n), Algorithm: alg, SHA1: tc.legacy, SHA256: !tc.legacy, Hasher: h}
				want, err := BlockChecksums(context.Background(), bytes.NewReader(data), opts)
				if err != nil {
					t.Fatal(err)
				}
				var got *control.File
				var next *ChecksumState
				opts.State = func(s *ChecksumState) { next = s }
				from := int64(0)
				prefix := &countingReaderAt{r: bytes.NewReader(data)}
				if prev != nil {
					opts.Resume, opts.Prefix, from = prev, prefix, prev.Complete()
				}
				got, err = BlockChecksums(context.Background(), bytes.NewReader(data[from:]), opts)
				if err != nil {
					t.Fatal(err)
				}
				var wb, gb bytes.Buffer
				want.Version, got.Version, want.Filename, got.Filename = control.SpecVersion, control.SpecVersion, "f", "f"
				if err := control.Write(&wb, want); err != nil {
					t.Fatal(err)
				}
				if err := control.Write(&gb, got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(wb.Bytes(), gb.Bytes()) {
					t.Fatalf("size %d resumed from %d: control files differ", n, from)
				}
				if limit := int64(control.MaxChainStates * MarkBlocks * tc.bs); prefix.n > limit {
					t.Errorf("size %d: read %d bytes of the prefix, want at most %d", n, prefix.n, limit)
				}
				if next == nil || next.Length != int64(n) || len(next.Rsum) != int(want.Blocks()) {
					t.Fatalf("size %d: state %+v", n, next)
				}
				prev = next
			}
		})
	}
}

// resumeCase is a case of TestBlockChecksumsResume: a file of sizes[0]
// bytes that grows to each of the following sizes.
type resumeCase struct {
	name   string
	bs     int
	legacy bool
	sizes  []int
}

// randomGrowth is a case of TestBlockChecksumsResume: ten random
// growths, some smaller than a block, of a file of up to about 1 MiB.
func randomGrowth(seed uint64, bs int) (c resumeCase) {
	r := rand.New(rand.NewPCG(seed, uint64(bs)))
	c.name, c.bs, c.legacy = fmt.Sprintf("random-%d-%d", seed, bs), bs, seed%2 == 0
	n := r.IntN(256 << 10)
	for range 10 {
		c.sizes = append(c.sizes, n)
		if r.IntN(2) == 0 {
			n += r.IntN(bs)
		} else {
			n += r.IntN(64 << 10)
		}
	}
	return c
}

type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}
