package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sourcegraph/conc/pool"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// FetchOptions configures Fetch.
type FetchOptions struct {
	FetchLimits
	// Hasher checks fetched blocks; nil creates one for the call.
	Hasher *simd.Hasher
	// Progress, if set, is called with the payload bytes verified so far,
	// after each verified piece. It may be called from several goroutines,
	// so a call may report less than one before it.
	Progress func(fetched int64)
	// Unchecked delivers the blocks without checking each against its
	// strong hash on arrival, in pieces of up to uncheckedBytes instead of
	// a lane-full of blocks. Nothing delivered is then vouched for: the
	// caller must check the whole result (its whole-file hash) before it
	// trusts any of it and, when that fails, find the bad blocks with
	// CheckBlocks and fetch them again, checked. A source of several
	// mirrors learns of a corrupt one only from checked fetches: leave it
	// unset for such a source, so that a lying mirror is dropped at its
	// first bad block.
	Unchecked bool
}

// FetchLimits bounds the ReadRanges calls of Fetch.
type FetchLimits struct {
	// Concurrency is how many ReadRanges calls run at once; 0 means 8.
	// Measured against nginx through an added round-trip time of 80 ms,
	// fetching 886 ranges: 3.7 s at 1, 0.98 s at 4, 0.50 s at 8, 0.26 s at
	// 16 (docs/network.md); 8 fills a long link without crowding a server.
	Concurrency int
	// RangesPerCall bounds the ranges of one ReadRanges call. 0 chooses
	// it from the plan (rangesPerCall): DefaultRangesPerCall, or more when
	// the ranges outnumber Concurrency calls of that size — as many as
	// spread them over Concurrency calls, but no more than one request of
	// the source carries (source.RangeLimiter; DefaultRangesPerCall for a
	// source that does not say). Each call is then one request, and
	// Concurrency the number of requests in flight; a request's headers
	// (≈ 300 bytes of response headers and closing boundary from nginx,
	// ≈ 450 of request) are paid by fewer requests.
	RangesPerCall int
	// CallBytes bounds the bytes of one ReadRanges call; longer ranges are
	// split at block boundaries. 0 means 4 MiB.
	CallBytes int64
}

// Defaults of FetchOptions.
const (
	DefaultConcurrency   = 8
	DefaultRangesPerCall = 20
)

// ErrFetch is wrapped by Fetch's errors that come from the source: the
// missing blocks could not be read, or failed their checksums.
var ErrFetch = errors.New("fetch failed")

// Fetch reads the missing ranges from src, checks each block against its
// strong hash (unless opts.Unchecked), and calls fn with batches of
// verified blocks. Calls to fn do
// not overlap; a range may be delivered more than once when a source
// retries it elsewhere. A block failing its hash is reported to the source
// through an error wrapping ErrCorrupt.
//
// The data of a batch is valid only during the call to fn: it is the
// buffer of one call in flight, reused for the next blocks (copying every
// fetched byte once more made a sync of a 244 MB file allocate 77 MB of
// garbage). A fn that keeps batches must copy them; FetchStage does.
func Fetch(ctx context.Context, f *control.File, src source.RangeSource, missing []source.Range, opts FetchOptions, fn func(Batch) error) error {
	if len(missing) == 0 {
		return nil
	}
	if src == nil {
		return fmt.Errorf("no source for the missing blocks: %w", ErrFetch)
	}
	hasher := opts.Hasher
	if hasher == nil {
		h, err := simd.NewHasher(f.StrongAlgorithm, simd.Options{})
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		defer h.Close()
		hasher = h
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	var progress func(int64)
	if opts.Progress != nil {
		var total atomic.Int64
		progress = func(n int64) { opts.Progress(total.Add(n)) }
	}
	calls := splitCalls(missing, int64(f.Blocksize), rangesPerCall(opts.RangesPerCall, len(missing), conc, src), opts.CallBytes)
	if e, ok := src.(source.Expecter); ok {
		// The calls below start in order but may reach the source in
		// any order; a source reading front to back waits for them.
		e.Expect(slices.Concat(calls...))
	}
	var mu sync.Mutex
	emit := func(b Batch) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(b)
	}
	p := pool.New().WithContext(ctx).WithCancelOnError().WithFirstError().WithMaxGoroutines(conc)
	for _, call := range calls {
		p.Go(func(ctx context.Context) error {
			v := verifier{f: f, hasher: hasher, emit: emit, progress: progress, unchecked: opts.Unchecked, callBytes: callLen(call)}
			err := src.ReadRanges(ctx, call, v.deliver)
			v.release()
			switch {
			case err == nil:
				return nil
			case v.emitErr != nil:
				return v.emitErr // the consumer failed, not the source
			case ctx.Err() != nil:
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w (%d ranges from byte %d)", ErrFetch, err, len(call), call[0].Start)
		})
	}
	return p.Wait()
}

// rangesPerCall returns the ranges per ReadRanges call for n missing
// ranges fetched by conc calls at once from src: perCall when it is set;
// otherwise DefaultRangesPerCall, raised up to the ranges src carries in
// one request so that the ranges fill about conc calls. Fewer, fuller
// requests cost fewer header bytes and round trips, and conc calls still
// keep as many requests in flight.
func rangesPerCall(perCall, n, conc int, src source.RangeSource) int {
	if perCall > 0 {
		return perCall
	}
	limit := DefaultRangesPerCall
	if l, ok := src.(source.RangeLimiter); ok {
		limit = max(1, l.MaxRanges())
	}
	want := (n + conc - 1) / max(conc, 1)
	return min(max(want, DefaultRangesPerCall), limit)
}

// splitCalls groups ranges into ReadRanges calls, splitting long ranges at
// block boundaries so that calls stay bounded and can run in parallel.
func splitCalls(missing []source.Range, bs int64, perCall int, callBytes int64) [][]source.Range {
	if perCall <= 0 {
		perCall = DefaultRangesPerCall
	}
	if callBytes <= 0 {
		callBytes = 4 << 20
	}
	callBytes = max(callBytes/bs*bs, bs)
	var calls [][]source.Range
	var cur []source.Range
	var curBytes int64
	for _, r := range missing {
		for r.Start < r.End {
			piece := r
			if room := callBytes - curBytes; piece.Len() > room {
				piece.End = piece.Start + max(room/bs*bs, bs)
				piece.End = min(piece.End, r.End)
			}
			cur = append(cur, piece)
			curBytes += piece.Len()
			r.Start = piece.End
			if len(cur) >= perCall || curBytes >= callBytes {
				calls = append(calls, cur)
				cur, curBytes = nil, 0
			}
		}
	}
	if len(cur) > 0 {
		calls = append(calls, cur)
	}
	return calls
}

// verifyBytes bounds the data one verifier holds.
const verifyBytes = 1 << 20

// uncheckedBytes bounds the pieces a verifier delivers unchecked
// (FetchOptions.Unchecked): one read of the source and one write of the
// output each.
const uncheckedBytes = 256 << 10

// uncheckedPool holds buffers of uncheckedBytes for the calls of
// unchecked fetches that fill them: allocated per call, they made the
// collector run more often (a mirror runs with a tight GOGC).
var uncheckedPool = sync.Pool{New: func() any { b := make([]byte, uncheckedBytes); return &b }}

// callLen returns the bytes of a call's ranges.
func callLen(call []source.Range) int64 {
	var n int64
	for _, r := range call {
		n += r.Len()
	}
	return n
}

// verifier checks the blocks of delivered ranges, lanes at a time.
type verifier struct {
	f         *control.File
	hasher    *simd.Hasher
	emit      func(Batch) error
	progress  func(int64)
	emitErr   error
	buf       []byte
	blocks    [][]byte
	digest    []byte
	unchecked bool    // deliver without checking (FetchOptions.Unchecked)
	callBytes int64   // the bytes of the call's ranges: no buffer is larger
	pooled    *[]byte // buf, when it comes from uncheckedPool
}

// release returns a pooled buffer once the call is over.
func (v *verifier) release() {
	if v.pooled != nil {
		uncheckedPool.Put(v.pooled)
		v.pooled, v.buf = nil, nil
	}
}

func (v *verifier) deliver(r source.Range, data io.Reader) error {
	bs := int64(v.f.Blocksize)
	if r.Start%bs != 0 || r.Start < 0 || r.End > v.f.Length || r.Len() <= 0 {
		return fmt.Errorf("fetch: range %d-%d is not a run of blocks of the target", r.Start, r.End)
	}
	if v.unchecked {
		return v.deliverUnchecked(r, data)
	}
	sb := v.f.Checksums.StrongBytes
	// Verify a lane-full of blocks at a time, but hold at most about
	// verifyBytes: large blocks go one or a few at a time.
	batch := max(1, min(lanes, verifyBytes/bs, (v.f.Length+bs-1)/bs)) // no more blocks than the file has
	if v.buf == nil {
		v.buf = make([]byte, batch*bs)
		v.digest = make([]byte, batch*int64(sb))
	}
	for off := r.Start; off < r.End; {
		n := min(r.End-off, batch*bs)
		buf := v.buf[:n]
		if _, err := io.ReadFull(data, buf); err != nil {
			return fmt.Errorf("read range %d-%d: %w", r.Start, r.End, err)
		}
		// The last block is hashed zero-padded, as it was made.
		k := int((n + bs - 1) / bs)
		padded := v.buf[:int64(k)*bs]
		clear(padded[n:])
		v.blocks = v.blocks[:0]
		for j := range k {
			v.blocks = append(v.blocks, padded[int64(j)*bs:int64(j+1)*bs])
		}
		v.hasher.SumBlocks(v.digest[:k*sb], sb, v.blocks)
		first := off / bs
		for j := range k {
			if !bytes.Equal(v.digest[j*sb:(j+1)*sb], v.f.Checksums.StrongOf(int(first)+j)) {
				return fmt.Errorf("block %d (bytes %d-%d): %w", first+int64(j), (first+int64(j))*bs, min((first+int64(j)+1)*bs, v.f.Length), source.ErrCorrupt)
			}
		}
		if err := v.hand(first, buf); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// hand passes a piece of a range, starting at block first, to the
// consumer and counts it as progress; the consumer's error is kept
// (emitErr) and returned.
func (v *verifier) hand(first int64, buf []byte) error {
	if err := v.emit(Batch{{Index: first, Data: buf}}); err != nil {
		v.emitErr = err
		return err
	}
	if v.progress != nil {
		v.progress(int64(len(buf)))
	}
	return nil
}

// deliverUnchecked hands the range on in pieces as large as the buffer,
// unchecked (FetchOptions.Unchecked).
func (v *verifier) deliverUnchecked(r source.Range, data io.Reader) error {
	bs := int64(v.f.Blocksize)
	if v.buf == nil {
		// No larger than the call: most ranges of a tree are small.
		// Calls of a quarter of a pooled buffer or more take one.
		if n := max(bs, min(uncheckedBytes/bs*bs, v.callBytes)); n >= uncheckedBytes/4 && bs <= uncheckedBytes/4 {
			v.pooled = uncheckedPool.Get().(*[]byte)
			v.buf = *v.pooled
		} else {
			v.buf = make([]byte, n)
		}
	}
	size := max(bs, int64(len(v.buf))/bs*bs)
	for off := r.Start; off < r.End; {
		n := min(r.End-off, size)
		buf := v.buf[:n]
		if _, err := io.ReadFull(data, buf); err != nil {
			return fmt.Errorf("read range %d-%d: %w", r.Start, r.End, err)
		}
		if err := v.hand(off/bs, buf); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// CheckBlocks reads every block of the target from r (an output of the
// target's length) and checks it against its strong hash, as a fetched
// block is checked (the last one zero-padded). It returns the blocks that
// fail, as maximal ranges of the target clipped to its length. A result
// whose whole-file hash fails is checked so, to find what to fetch again.
func CheckBlocks(ctx context.Context, f *control.File, r io.ReaderAt, hasher *simd.Hasher) ([]source.Range, error) {
	bs := int64(f.Blocksize)
	n := f.Blocks()
	if c := &f.Checksums; int64(c.Len()) != n || c.StrongBytes <= 0 {
		return nil, fmt.Errorf("check blocks: control file has %d block records for %d blocks", c.Len(), n)
	}
	sb := f.Checksums.StrongBytes
	batch := max(1, min(lanes, verifyBytes/bs, n))
	buf := make([]byte, batch*bs)
	digest := make([]byte, batch*int64(sb))
	blocks := make([][]byte, 0, batch)
	var bad []source.Range
	for first := int64(0); first < n; first += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(batch, n-first)
		start := first * bs
		length := min(k*bs, f.Length-start)
		got, err := r.ReadAt(buf[:length], start)
		if int64(got) < length {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("check blocks: read output at %d: %w", start, err)
		}
		clear(buf[length : k*bs])
		blocks = blocks[:0]
		for j := range k {
			blocks = append(blocks, buf[j*bs:(j+1)*bs])
		}
		hasher.SumBlocks(digest[:k*int64(sb)], sb, blocks)
		for j := range k {
			if bytes.Equal(digest[j*int64(sb):(j+1)*int64(sb)], f.Checksums.StrongOf(int(first+j))) {
				continue
			}
			s, e := (first+j)*bs, min((first+j+1)*bs, f.Length)
			if l := len(bad) - 1; l >= 0 && bad[l].End == s {
				bad[l].End = e
			} else {
				bad = append(bad, source.Range{Start: s, End: e})
			}
		}
	}
	return bad, nil
}

// PlanStage adds a stage called plan that turns each Matches it receives —
// the result of a finished scan, from DeltaStage — into a Plan (Blueprint).
func PlanStage(p *pipeline.Pipeline, h *control.Header, in *pipeline.Stream[*Matches]) *pipeline.Stream[*Plan] {
	return pipeline.Map(p, "plan", in, 1, func(ctx context.Context, m *Matches) (*Plan, error) {
		return Blueprint(h, m), nil
	})
}

// FetchStage adds fetch to a pipeline: for each Plan it receives, it
// fetches the missing ranges and emits verified batches, each a copy of
// its own. src is asked for a source only when something is missing.
func FetchStage(p *pipeline.Pipeline, f *control.File, in *pipeline.Stream[*Plan], src func(context.Context) (source.RangeSource, error), opts FetchOptions) *pipeline.Stream[Batch] {
	return pipeline.Transform(p, "fetch", in, func(ctx context.Context, plan *Plan, emit func(Batch) error) error {
		if len(plan.Missing) == 0 {
			return nil
		}
		s, err := src(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrFetch, err)
		}
		return Fetch(ctx, f, s, plan.Missing, opts, func(b Batch) error {
			own := make(Batch, len(b))
			for i, blk := range b {
				own[i] = Block{Index: blk.Index, Data: bytes.Clone(blk.Data)}
			}
			return emit(own)
		})
	})
}
