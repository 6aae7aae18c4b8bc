package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

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

// BenchmarkMake is what "zsyncpipe make" computes, read from a file: the
// default format (MD5 records, SHA-256 File-Hash and hash chain) at 2 and
// 4 KiB blocks, and --legacy (MD4, SHA-1) at 4 KiB. MB/cpu-s is the
// throughput per second of CPU time (all cores), steadier than MB/s on a
// shared machine.
func BenchmarkMake(b *testing.B) {
	target, _, _ := benchData()
	path := filepath.Join(b.TempDir(), "target")
	if err := os.WriteFile(path, target, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bs     int
		legacy bool
	}{
		{"spec/2KiB", 2048, false},
		{"spec/4KiB", 4096, false},
		{"legacy/4KiB", 4096, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			alg := strong.MD5
			if tc.legacy {
				alg = strong.MD4
			}
			h := newHasher(b, alg, simd.Options{})
			opts := ChecksumOptions{Blocksize: tc.bs, Length: benchSize, Algorithm: alg,
				SHA1: tc.legacy, SHA256: !tc.legacy, Hasher: h}
			b.SetBytes(benchSize)
			cpu0 := processCPU()
			for b.Loop() {
				in, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				f, err := BlockChecksums(context.Background(), in, opts)
				in.Close()
				if err != nil {
					b.Fatal(err)
				}
				if f.Blocks() != benchSize/int64(tc.bs) || (!tc.legacy && f.SHA256Chain == nil) {
					b.Fatalf("%d blocks, chain %v", f.Blocks(), f.SHA256Chain != nil)
				}
			}
			if cpu := (processCPU() - cpu0).Seconds(); cpu > 0 {
				b.ReportMetric(float64(b.N)*benchSize/1e6/cpu, "MB/cpu-s")
			}
		})
	}
}

func BenchmarkDelta(b *testing.B) {
	target, shared95, unrelated := benchData()
	f := benchControl()
	h := newHasher(b, strong.MD5, simd.Options{})
	for _, tc := range []struct {
		name    string
		seed    []byte
		aligned bool
	}{
		{"identical", target, false},  // continuation path; ends when complete
		{"shared95", shared95, false}, // mostly continuation, rolling near edits
		{"random", unrelated, false},  // rolling path throughout
		// Seed.Aligned: block boundaries only, as the mirror reads files
		// the new tree keeps.
		{"random-aligned", unrelated, true},
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
					seed := seedOf("seed", tc.seed)
					seed.Aligned = tc.aligned
					m, err := Delta(context.Background(), f, []Seed{seed}, DeltaOptions{Workers: workers, Hasher: h})
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

// BenchmarkScanWrite is the seed scan as a sync runs it over matching data:
// the seed read from a file, every block confirmed on the SIMD lanes and
// written at its place in an output file through a Patcher (read, confirm,
// write). MB/cpu-s is the figure the CPU spends per second of its time.
func BenchmarkScanWrite(b *testing.B) {
	target, shared95, _ := benchData()
	f := benchControl()
	h := newHasher(b, strong.MD5, simd.Options{})
	dir := b.TempDir()
	for _, tc := range []struct {
		name string
		seed []byte
	}{{"identical", target}, {"shared95", shared95}} {
		seedPath := filepath.Join(dir, tc.name)
		if err := os.WriteFile(seedPath, tc.seed, 0o644); err != nil {
			b.Fatal(err)
		}
		// "rewrite" writes over the same output each time: its pages are
		// in the page cache and its blocks allocated already. "fresh"
		// writes a new output each time, as a sync does: the kernel then
		// allocates a page-cache page and reserves a block for every 4 KiB
		// written, which costs about as much CPU as the scan itself (the
		// gap between this benchmark's ~1200 MB/cpu-s and the ~400-500 of
		// a real sync).
		for _, fresh := range []bool{false, true} {
			name := tc.name + "/rewrite"
			if fresh {
				name = tc.name + "/fresh"
			}
			b.Run(name, func(b *testing.B) {
				sf, err := os.Open(seedPath)
				if err != nil {
					b.Fatal(err)
				}
				defer sf.Close()
				outPath := filepath.Join(dir, "out")
				out, err := os.Create(outPath)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { out.Close() }()
				b.SetBytes(int64(len(tc.seed)))
				var cpu time.Duration
				for b.Loop() {
					if fresh {
						b.StopTimer()
						out.Close()
						os.Remove(outPath)
						if out, err = os.Create(outPath); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					cpu0 := processCPU()
					pt := NewPatcher(out, &f.Header)
					_, err := Delta(context.Background(), f, []Seed{{Name: "seed", R: sf, Size: int64(len(tc.seed))}},
						DeltaOptions{Workers: 1, Hasher: h, OnBlocks: pt.WriteBlock})
					if err != nil {
						b.Fatal(err)
					}
					cpu += processCPU() - cpu0
				}
				if cpu > 0 {
					b.ReportMetric(float64(b.N)*float64(len(tc.seed))/1e6/cpu.Seconds(), "MB/cpu-s")
				}
			})
		}
	}
}

// BenchmarkVerifyChain checks a written output against its SHA-256, once
// serially and once as a hash chain on one worker and on two: the chain
// costs nothing in CPU and divides the wall time by the workers.
func BenchmarkVerifyChain(b *testing.B) {
	target, _, _ := benchData()
	f, err := BlockChecksums(context.Background(), bytes.NewReader(target), ChecksumOptions{
		Blocksize: benchBS, Length: int64(len(target)), SHA256: true,
	})
	if err != nil || f.SHA256Chain == nil {
		b.Fatalf("no chain: %v", err)
	}
	out := make(sliceWriterAt, len(target))
	pt := NewPatcher(out, &f.Header)
	if err := pt.WriteBlock(Block{Index: 0, Data: target}); err != nil {
		b.Fatal(err)
	}
	serial := f.Header
	serial.SHA256Chain = nil
	for _, tc := range []struct {
		name    string
		h       *control.Header
		workers int
	}{{"serial", &serial, 1}, {"chain/workers1", &f.Header, 1}, {"chain/workers2", &f.Header, 2}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(target)))
			for b.Loop() {
				v := NewPrefixVerifier(bytes.NewReader(out), tc.h, pt)
				v.workers = tc.workers
				if err := v.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				if err := v.Verify(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyFollow runs the whole-file hash as a sync does, beside the
// writer: PrefixVerifier.Run follows a Patcher that a second goroutine
// fills in 1 MiB runs, the first run of every fourth MiB held back until
// the end (the gaps a fetch fills last), so that each span of the chain
// waits at its gap and the rest is hashed only once the gaps are filled.
func BenchmarkVerifyFollow(b *testing.B) {
	target, _, _ := benchData()
	f, err := BlockChecksums(context.Background(), bytes.NewReader(target), ChecksumOptions{
		Blocksize: benchBS, Length: int64(len(target)), SHA256: true,
	})
	if err != nil || f.SHA256Chain == nil {
		b.Fatalf("no chain: %v", err)
	}
	const run = 1 << 20
	b.SetBytes(int64(len(target)))
	for b.Loop() {
		out := make(sliceWriterAt, len(target))
		pt := NewPatcher(out, &f.Header)
		v := NewPrefixVerifier(bytes.NewReader(out), &f.Header, pt)
		done := make(chan error, 1)
		go func() { done <- v.Run(context.Background()) }()
		write := func(off int) {
			if err := pt.WriteBlock(Block{Index: int64(off / benchBS), Data: target[off:min(off+run, len(target))]}); err != nil {
				b.Error(err)
			}
		}
		for off := 0; off < len(target); off += run {
			if off/run%4 != 1 {
				write(off)
			}
		}
		for off := run; off < len(target); off += 4 * run {
			write(off)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if err := v.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}
