package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// fetchInto fetches missing from src into a Patcher over a fresh memFile.
func fetchInto(t *testing.T, f *control.File, src source.RangeSource, missing []source.Range, opts FetchOptions) (*Patcher, *memFile, error) {
	t.Helper()
	out := &memFile{}
	pt := NewPatcher(out, &f.Header)
	err := Fetch(context.Background(), f, src, missing, opts, pt.Write)
	return pt, out, err
}

// TestFetchCorrectSource fetches every block, and scattered ranges, from a
// source serving the target, with small calls run concurrently.
func TestFetchCorrectSource(t *testing.T) {
	const bs = 512
	target := randData(201, 300*bs+17)
	f := makeControl(t, target, bs, control.HashLengths{})
	for _, opts := range []FetchOptions{
		{},
		{FetchLimits: FetchLimits{Concurrency: 3, RangesPerCall: 2, CallBytes: 5 * bs}},
		{FetchLimits: FetchLimits{Concurrency: 1, RangesPerCall: 1, CallBytes: 1}},
	} {
		var progress atomic.Int64
		opts.Progress = func(n int64) { // cumulative: keep the largest
			for old := progress.Load(); n > old && !progress.CompareAndSwap(old, n); old = progress.Load() {
			}
		}
		pt, out, err := fetchInto(t, f, source.ReaderAt{R: bytes.NewReader(target)}, []source.Range{{Start: 0, End: f.Length}}, opts)
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		if err := pt.Finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), target) {
			t.Errorf("%+v: output differs", opts)
		}
		if progress.Load() != f.Length {
			t.Errorf("%+v: progress %d, want %d", opts, progress.Load(), f.Length)
		}
	}

	// Only the missing ranges of a plan are fetched.
	m := NewMatches(f.Blocks())
	for i := int64(0); i < f.Blocks(); i += 3 {
		m.Set(i, 0, i*bs)
	}
	plan := Blueprint(&f.Header, m)
	var fetched atomic.Int64
	out := &memFile{}
	pt := NewPatcher(out, &f.Header)
	err := Fetch(context.Background(), f, source.ReaderAt{R: bytes.NewReader(target)}, plan.Missing, FetchOptions{FetchLimits: FetchLimits{CallBytes: 8 * bs}},
		func(b Batch) error { fetched.Add(b.Size()); return pt.Write(b) })
	if err != nil {
		t.Fatal(err)
	}
	if fetched.Load() != plan.MissingBytes {
		t.Errorf("fetched %d bytes, plan misses %d", fetched.Load(), plan.MissingBytes)
	}
	if err := pt.CopyFromSeeds(context.Background(), plan, []Seed{seedOf("t", target)}); err != nil {
		t.Fatal(err)
	}
	if err := pt.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), target) {
		t.Errorf("plan output differs")
	}

	// Nothing missing needs no source.
	if err := Fetch(context.Background(), f, nil, nil, FetchOptions{}, pt.Write); err != nil {
		t.Errorf("nothing missing: %v", err)
	}
	if err := Fetch(context.Background(), f, nil, plan.Missing, FetchOptions{}, pt.Write); !errors.Is(err, ErrFetch) {
		t.Errorf("nil source: %v", err)
	}
}

// TestFetchCorrupt checks that wrong bytes from the source are an error
// wrapping both ErrFetch and ErrCorrupt, and that no bad block reaches fn.
func TestFetchCorrupt(t *testing.T) {
	const bs = 512
	target := randData(211, 64*bs+100)
	f := makeControl(t, target, bs, control.HashLengths{})
	for _, at := range []int{0, 33*bs + 7, len(target) - 1} {
		bad := bytes.Clone(target)
		bad[at] ^= 0x40
		var got []Block
		err := Fetch(context.Background(), f, source.ReaderAt{R: bytes.NewReader(bad)}, []source.Range{{Start: 0, End: f.Length}}, FetchOptions{FetchLimits: FetchLimits{Concurrency: 1}},
			func(b Batch) error {
				for _, blk := range b {
					got = append(got, Block{Index: blk.Index, Data: bytes.Clone(blk.Data)})
				}
				return nil
			})
		if !errors.Is(err, source.ErrCorrupt) || !errors.Is(err, ErrFetch) {
			t.Errorf("corrupt byte %d: err %v", at, err)
		}
		for _, b := range got {
			if !bytes.Equal(b.Data, target[b.Index*bs:b.Index*bs+int64(len(b.Data))]) {
				t.Errorf("corrupt byte %d: bad data delivered at block %d", at, b.Index)
			}
		}
	}
}

// mirrorSource serves ranges from the first of its copies that is still
// trusted; when fn reports corruption it drops that copy and delivers the
// range again from the next, as a multi-mirror source does. With twice
// set it delivers every range a second time.
type mirrorSource struct {
	mu     sync.Mutex
	copies [][]byte
	twice  bool
	drops  int
}

func (s *mirrorSource) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	for _, r := range ranges {
		for {
			s.mu.Lock()
			if len(s.copies) == 0 {
				s.mu.Unlock()
				return errors.New("no copies left")
			}
			c := s.copies[0]
			s.mu.Unlock()
			err := fn(r, bytes.NewReader(c[r.Start:r.End]))
			if errors.Is(err, source.ErrCorrupt) {
				s.mu.Lock()
				if len(s.copies) > 0 && &s.copies[0][0] == &c[0] {
					s.copies = s.copies[1:]
					s.drops++
				}
				s.mu.Unlock()
				continue
			}
			if err != nil {
				return err
			}
			if s.twice {
				if err := fn(r, bytes.NewReader(c[r.Start:r.End])); err != nil {
					return err
				}
			}
			break
		}
	}
	return nil
}

// TestFetchRedelivery checks that a range delivered again — after a corrupt
// copy was dropped, or simply twice — is accepted.
func TestFetchRedelivery(t *testing.T) {
	const bs = 256
	target := randData(221, 100*bs+3)
	f := makeControl(t, target, bs, control.HashLengths{})
	bad := bytes.Clone(target)
	for i := 5; i < len(bad); i += 3000 {
		bad[i] ^= 1
	}
	for _, twice := range []bool{false, true} {
		src := &mirrorSource{copies: [][]byte{bad, target}, twice: twice}
		pt, out, err := fetchInto(t, f, src, []source.Range{{Start: 0, End: 10 * bs}, {Start: 20 * bs, End: f.Length}}, FetchOptions{FetchLimits: FetchLimits{CallBytes: 16 * bs}})
		if err != nil {
			t.Fatalf("twice %v: %v", twice, err)
		}
		if src.drops != 1 {
			t.Errorf("twice %v: %d copies dropped, want 1", twice, src.drops)
		}
		pt.WriteBlock(Block{Index: 10, Data: target[10*bs : 20*bs]})
		if err := pt.Finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), target) {
			t.Errorf("twice %v: output differs", twice)
		}
	}
}

// TestFetchConsumerError checks that fn's error is returned as is, not as
// a failure of the source.
func TestFetchConsumerError(t *testing.T) {
	const bs = 512
	target := randData(231, 40*bs)
	f := makeControl(t, target, bs, control.HashLengths{})
	stop := errors.New("disk full")
	err := Fetch(context.Background(), f, source.ReaderAt{R: bytes.NewReader(target)}, []source.Range{{Start: 0, End: f.Length}}, FetchOptions{},
		func(Batch) error { return stop })
	if !errors.Is(err, stop) || errors.Is(err, ErrFetch) {
		t.Errorf("consumer error: %v", err)
	}
	// A range that is not a run of blocks is refused.
	err = Fetch(context.Background(), f, source.ReaderAt{R: bytes.NewReader(target)}, []source.Range{{Start: 7, End: 2 * bs}}, FetchOptions{},
		func(Batch) error { return nil })
	if !errors.Is(err, ErrFetch) {
		t.Errorf("unaligned range: %v", err)
	}
}

// TestSplitCalls checks the bounds of ReadRanges calls: at most perCall
// ranges and callBytes bytes (rounded down to whole blocks, at least one),
// pieces starting on block boundaries, and together exactly the input.
func TestSplitCalls(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 500 {
		bs := int64(1) << (4 + rng.IntN(9))
		length := bs*int64(rng.IntN(300)+1) - int64(rng.IntN(int(bs)))
		blocks := (length + bs - 1) / bs
		// Random maximal missing ranges.
		var missing []source.Range
		for i := int64(0); i < blocks; {
			k := int64(rng.IntN(20) + 1)
			if rng.IntN(2) == 0 {
				missing = append(missing, source.Range{Start: i * bs, End: min((i+k)*bs, length)})
			}
			i += k + 1
		}
		perCall := rng.IntN(5)
		callBytes := int64(rng.IntN(int(20 * bs)))
		calls := splitCalls(missing, bs, perCall, callBytes)

		wantPer, wantBytes := perCall, callBytes
		if wantPer <= 0 {
			wantPer = 64
		}
		if wantBytes <= 0 {
			wantBytes = 4 << 20
		}
		wantBytes = max(wantBytes/bs*bs, bs)
		var pieces []source.Range
		for _, c := range calls {
			if len(c) == 0 || len(c) > wantPer {
				t.Fatalf("iter %d: call of %d ranges, limit %d", iter, len(c), wantPer)
			}
			var n int64
			for _, r := range c {
				n += r.Len()
				if r.Start%bs != 0 || (r.End%bs != 0 && r.End != length) || r.Len() <= 0 {
					t.Fatalf("iter %d: piece %v not a run of blocks (bs %d, length %d)", iter, r, bs, length)
				}
			}
			if n > wantBytes {
				t.Fatalf("iter %d: call of %d bytes, limit %d (bs %d, asked %d)", iter, n, wantBytes, bs, callBytes)
			}
			pieces = append(pieces, c...)
		}
		// Merge touching pieces back: the input ranges.
		var merged []source.Range
		for _, p := range pieces {
			if k := len(merged) - 1; k >= 0 && merged[k].End == p.Start {
				merged[k].End = p.End
			} else {
				merged = append(merged, p)
			}
		}
		if fmt.Sprint(merged) != fmt.Sprint(missing) {
			t.Fatalf("iter %d: pieces %v do not make up %v", iter, pieces, missing)
		}
	}
}

// limitedSource is a source that carries at most limit ranges per request
// (source.RangeLimiter) and records the ranges of each call.
type limitedSource struct {
	source.ReaderAt
	limit int
	mu    sync.Mutex
	calls []int
}

func (s *limitedSource) MaxRanges() int { return s.limit }

func (s *limitedSource) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	s.mu.Lock()
	s.calls = append(s.calls, len(ranges))
	s.mu.Unlock()
	return s.ReaderAt.ReadRanges(ctx, ranges, fn)
}

// TestFetchRangesPerCall checks how Fetch groups a plan's ranges into
// calls (one HTTP request each), the part of the plan's byte cost that
// headers make: ≈ 750 bytes per request, request and response, whatever
// its ranges. With more ranges than DefaultConcurrency calls of
// DefaultRangesPerCall hold, the ranges are spread over DefaultConcurrency
// calls, up to what one request of the source carries; never fewer than
// DefaultRangesPerCall per call, nor more than the source takes.
func TestFetchRangesPerCall(t *testing.T) {
	const bs = 512
	target := randData(77, 4200*bs)
	f := makeControl(t, target, bs, control.HashLengths{})
	every := func(n int) []source.Range { // n separate blocks
		var rs []source.Range
		for i := range n {
			rs = append(rs, source.Range{Start: int64(2*i) * bs, End: int64(2*i+1) * bs})
		}
		return rs
	}
	for _, tc := range []struct {
		ranges, limit int // limit 0: a source that does not say
		perCall       FetchLimits
		wantCalls     int
		wantMax       int
	}{
		{ranges: 100, limit: 64, wantCalls: 5, wantMax: 20},   // 20 per call: 5 requests in flight
		{ranges: 261, limit: 64, wantCalls: 8, wantMax: 33},   // the go1.26 reference pair: 8 of 33, not 14 of 20
		{ranges: 2000, limit: 64, wantCalls: 32, wantMax: 64}, // as many as a request carries
		{ranges: 261, limit: 5, wantCalls: 53, wantMax: 5},    // a server that takes 5
		{ranges: 261, limit: 0, wantCalls: 14, wantMax: 20},   // a source that does not say
		{ranges: 261, limit: 64, perCall: FetchLimits{RangesPerCall: 10}, wantCalls: 27, wantMax: 10},
	} {
		var src source.RangeSource
		ls := &limitedSource{ReaderAt: source.ReaderAt{R: bytes.NewReader(target)}, limit: tc.limit}
		src = ls
		if tc.limit == 0 {
			src = struct{ source.RangeSource }{ls} // hides MaxRanges
		}
		_, _, err := fetchInto(t, f, src, every(tc.ranges), FetchOptions{FetchLimits: tc.perCall})
		if err != nil {
			t.Fatal(err)
		}
		most := 0
		for _, n := range ls.calls {
			most = max(most, n)
		}
		if len(ls.calls) != tc.wantCalls || most != tc.wantMax {
			t.Errorf("%d ranges, source limit %d, %+v: %d calls of up to %d ranges, want %d of up to %d",
				tc.ranges, tc.limit, tc.perCall, len(ls.calls), most, tc.wantCalls, tc.wantMax)
		}
	}
}

// TestFetchUnchecked checks that an unchecked fetch delivers what the
// source sends, in pieces larger than a lane-full of blocks, without
// checking it, and that CheckBlocks then finds exactly the blocks that
// differ — the last, short one too — and none in a correct output.
func TestFetchUnchecked(t *testing.T) {
	const bs = 512
	target := randData(241, 300*bs+17)
	f := makeControl(t, target, bs, control.HashLengths{})
	h := newHasher(t, f.StrongAlgorithm, simd.Options{})
	for _, at := range [][]int{nil, {0}, {33*bs + 7}, {len(target) - 1}, {5, 6*bs + 1, 6*bs + 2, 7 * bs, 100 * bs}} {
		bad := bytes.Clone(target)
		for _, i := range at {
			bad[i] ^= 0x40
		}
		var pieces, largest int
		out := &memFile{}
		pt := NewPatcher(out, &f.Header)
		err := Fetch(context.Background(), f, source.ReaderAt{R: bytes.NewReader(bad)}, []source.Range{{Start: 0, End: 10 * bs}, {Start: 10 * bs, End: f.Length}},
			FetchOptions{Unchecked: true, Hasher: h, FetchLimits: FetchLimits{Concurrency: 1}},
			func(b Batch) error {
				pieces++
				largest = max(largest, len(b[0].Data))
				return pt.Write(b)
			})
		if err != nil {
			t.Fatalf("corrupt bytes %v: %v", at, err)
		}
		if err := pt.Finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), bad) {
			t.Fatalf("corrupt bytes %v: the output is not what the source sent", at)
		}
		if largest <= lanes*bs {
			t.Errorf("largest piece %d bytes: no larger than a lane-full of blocks", largest)
		}
		got, err := CheckBlocks(context.Background(), f, bytes.NewReader(out.Bytes()), h)
		if err != nil {
			t.Fatal(err)
		}
		var want []source.Range
		for _, i := range at {
			s, e := int64(i)/bs*bs, min(int64(i)/bs*bs+bs, f.Length)
			if k := len(want) - 1; k >= 0 && want[k].End >= s {
				want[k].End = max(want[k].End, e)
				continue
			}
			want = append(want, source.Range{Start: s, End: e})
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("corrupt bytes %v: CheckBlocks found %v, want %v", at, got, want)
		}
		// Forgotten blocks are missing again; rewritten, the output is whole.
		pt.Forget(got)
		if fmt.Sprint(pt.Missing()) != fmt.Sprint(want) || (len(want) > 0) == pt.Complete() {
			t.Errorf("corrupt bytes %v: after Forget the patcher misses %v (complete %v), want %v", at, pt.Missing(), pt.Complete(), want)
		}
		for _, r := range got {
			if err := pt.WriteBlock(Block{Index: r.Start / bs, Data: target[r.Start:r.End]}); err != nil {
				t.Fatal(err)
			}
		}
		if !pt.Complete() || !bytes.Equal(out.Bytes(), target) {
			t.Errorf("corrupt bytes %v: not repaired", at)
		}
	}
	// A short output is an error, not a list of bad blocks.
	if _, err := CheckBlocks(context.Background(), f, bytes.NewReader(target[:len(target)-1]), h); err == nil {
		t.Error("CheckBlocks of a short output: no error")
	}
}

// TestFetchUncheckedPoolsBuffers checks that the calls of unchecked
// fetches take their buffers from a pool instead of allocating one each:
// four calls of 256 KiB allocate 1 MiB of buffers unpooled.
func TestFetchUncheckedPoolsBuffers(t *testing.T) {
	const bs = 2048
	target := randData(251, 4*uncheckedBytes)
	f := makeControl(t, target, bs, control.HashLengths{})
	h := newHasher(t, f.StrongAlgorithm, simd.Options{})
	src := source.ReaderAt{R: bytes.NewReader(target)}
	whole := []source.Range{{Start: 0, End: f.Length}}
	opts := FetchOptions{Unchecked: true, Hasher: h, FetchLimits: FetchLimits{Concurrency: 1, CallBytes: uncheckedBytes}}
	fetch := func() {
		if err := Fetch(context.Background(), f, src, whole, opts, func(Batch) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	fetch()
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		fetch()
	}
	runtime.ReadMemStats(&after)
	// Under the race detector the pool drops a quarter of what it is
	// given: allow half of the unpooled buffers.
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 2*uncheckedBytes {
		t.Errorf("an unchecked fetch of 4 calls allocates %d bytes, want under %d", per, 2*uncheckedBytes)
	}
}
