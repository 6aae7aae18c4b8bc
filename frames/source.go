package frames

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// RangeOverhead is what a Source counts for each range of a request
// beside its bytes: the part headers of a multi-range response (about 80
// bytes from nginx) and the range in the request.
const RangeOverhead = 100

// Source reads ranges of a file from File, or from its frames (Frames,
// described by Layout) where the frames cost fewer bytes: the plan is
// made by Expect, per frame, from all the ranges a fetch will ask for. A
// frame is fetched when it is stored in fewer bytes than the ranges
// within it, with RangeOverhead for each.
//
// Unlike a transport's source, a Source may deliver a range in pieces
// (each within one frame, or a run of ranges it passes on to File) and
// not in order: its consumer must take block-aligned pieces in any order,
// as stages.Fetch does. The frame size must therefore be a multiple of
// the consumer's block size. A frame that fails to arrive or to decode,
// or whose data the consumer reports corrupt (source.ErrCorrupt), is
// read from File instead, and the Source uses no more frames.
//
// It is safe for concurrent use.
type Source struct {
	file, frames source.RangeSource
	l            Layout
	offsets      []int64 // of each frame in the file of frames
	mu           sync.Mutex
	use          []bool // per frame, by Expect's plan
	off          atomic.Bool
	failed       atomic.Pointer[error] // the first failure of frames
	bufs         *Buffers
	stats        struct{ frames, stored, decoded atomic.Int64 }
}

// NewSource returns a Source of the file read from file, whose frames,
// described by l, are read from frames. Its buffers come from bufs (nil:
// its own). It fails when l is inconsistent.
func NewSource(file, frames source.RangeSource, l Layout, bufs *Buffers) (*Source, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	if bufs == nil {
		bufs = new(Buffers)
	}
	s := &Source{file: file, frames: frames, l: l, bufs: bufs, offsets: make([]int64, len(l.Lengths)+1)}
	for i, n := range l.Lengths {
		s.offsets[i+1] = s.offsets[i] + int64(n)
	}
	return s, nil
}

// Stats reports what a Source fetched from frames.
type Stats struct {
	// Frames counts the frames fetched, Stored their stored bytes, and
	// Decoded the bytes of ranges they delivered.
	Frames, Stored, Decoded int64
}

// Stats returns what s fetched from frames so far.
func (s *Source) Stats() Stats {
	return Stats{Frames: s.stats.frames.Load(), Stored: s.stats.stored.Load(), Decoded: s.stats.decoded.Load()}
}

// Failed returns why s stopped using frames, or nil.
func (s *Source) Failed() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Expect makes the plan for ranges, all the ranges the calls that follow
// will ask for: which frames to fetch. It passes the ranges on to File
// when File is a source.Expecter.
func (s *Source) Expect(ranges []source.Range) {
	use, _ := s.l.plan(ranges)
	s.mu.Lock()
	s.use = use
	s.mu.Unlock()
	if e, ok := s.file.(source.Expecter); ok {
		// Only what File will be asked for: a source that reads front
		// to back would wait for the rest.
		raw, _ := s.split(ranges, use)
		e.Expect(raw)
	}
}

// plan returns, for ranges of the file, the frames a Source takes (those
// stored in fewer bytes than the ranges within them, with RangeOverhead
// for each) and the bytes it then fetches: the frames' stored bytes and
// the rest of the ranges, overheads included.
func (l *Layout) plan(ranges []source.Range) (use []bool, cost int64) {
	use = make([]bool, len(l.Lengths))
	need := make([]int64, len(l.Lengths)) // bytes and overhead of the ranges within each frame
	l.parts(ranges, func(f int, r source.Range, _ bool) {
		if f < len(need) {
			need[f] += r.Len() + RangeOverhead
		} else {
			cost += r.Len() + RangeOverhead
		}
	})
	for f, n := range need {
		switch {
		case n == 0:
		case int64(l.Lengths[f])+RangeOverhead < n:
			use[f] = true
			cost += int64(l.Lengths[f]) + RangeOverhead
		default:
			cost += n
		}
	}
	return use, cost
}

// parts calls fn with each part of ranges within one frame, f (past the
// last frame for a range past the file's end), in order; first reports
// a range's first part.
func (l *Layout) parts(ranges []source.Range, fn func(f int, part source.Range, first bool)) {
	for _, r := range ranges {
		for p := r.Start; p < r.End; {
			f := int(p / l.FrameSize)
			end := min(r.End, int64(f+1)*l.FrameSize)
			fn(f, source.Range{Start: p, End: end}, p == r.Start)
			p = end
		}
	}
}

// Cost returns what a Source would fetch for ranges (sorted, not
// overlapping): the stored bytes of the frames it takes and the bytes of
// the rest of the ranges, with RangeOverhead for each frame taken and for
// each part of a range within one frame.
func (l *Layout) Cost(ranges []source.Range) int64 {
	_, cost := l.plan(ranges)
	return cost
}

// MaxRanges returns File's ranges per request, when it says.
func (s *Source) MaxRanges() int {
	if l, ok := s.file.(source.RangeLimiter); ok {
		return l.MaxRanges()
	}
	return 1 << 10
}

// piece is a part of a range that frame f serves.
type piece struct {
	f int
	r source.Range
}

// ReadRanges reads ranges, those parts the plan gives to frames from
// frames, the rest from File; see Source.
func (s *Source) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	if err := source.CheckRanges(ranges); err != nil {
		return err
	}
	s.mu.Lock()
	use := s.use
	s.mu.Unlock()
	if use == nil || s.off.Load() {
		return s.file.ReadRanges(ctx, ranges, fn)
	}
	raw, pieces := s.split(ranges, use)
	if len(pieces) == 0 {
		return s.file.ReadRanges(ctx, ranges, fn)
	}
	if len(raw) > 0 {
		if err := s.file.ReadRanges(ctx, raw, fn); err != nil {
			return err
		}
	}
	left, err := s.readFrames(ctx, pieces, fn)
	if err != nil {
		return err
	}
	if len(left) == 0 {
		return nil
	}
	return s.file.ReadRanges(ctx, merge(left), fn)
}

// split cuts ranges at the frames' boundaries into the parts File reads
// (each the parts of one range between frames the plan uses, joined) and
// the pieces frames deliver.
func (s *Source) split(ranges []source.Range, use []bool) (raw []source.Range, pieces []piece) {
	joined := false // the last part of raw is of the same range, just before
	s.l.parts(ranges, func(f int, p source.Range, first bool) {
		switch {
		case f < len(use) && use[f]:
			pieces = append(pieces, piece{f, p})
			joined = false
		case joined && !first:
			raw[len(raw)-1].End = p.End
		default:
			raw = append(raw, p)
			joined = true
		}
	})
	return raw, pieces
}

// readFrames delivers pieces from their frames and returns those it did
// not deliver because frames failed. Its error is fn's or the context's.
func (s *Source) readFrames(ctx context.Context, pieces []piece, fn func(source.Range, io.Reader) error) (left []source.Range, err error) {
	// The frames, merged into runs where they lie back to back.
	var fr []source.Range
	last := -1
	for _, p := range pieces {
		if p.f == last {
			continue
		}
		r := source.Range{Start: s.offsets[p.f], End: s.offsets[p.f+1]}
		if n := len(fr); n > 0 && last == p.f-1 {
			fr[n-1].End = r.End
		} else {
			fr = append(fr, r)
		}
		last = p.f
	}
	bp := s.bufs.get(2 * s.l.FrameSize)
	defer s.bufs.put(bp)
	stored, decoded := (*bp)[:s.l.FrameSize], (*bp)[s.l.FrameSize:]
	next := 0 // the first piece not delivered
	var fnErr, corrupt error
	ferr := s.frames.ReadRanges(ctx, fr, func(r source.Range, data io.Reader) error {
		for pos := r.Start; pos < r.End; {
			if next == len(pieces) {
				return errors.New("frames: data past the frames asked for")
			}
			f := pieces[next].f
			if s.offsets[f] != pos || s.offsets[f+1] > r.End {
				return fmt.Errorf("frames: frame %d is not at %d", f, pos)
			}
			n := s.offsets[f+1] - pos
			if _, err := io.ReadFull(data, stored[:n]); err != nil {
				return err
			}
			frame, err := s.l.Decode(decoded, stored[:n], f)
			if err != nil {
				return err
			}
			s.stats.frames.Add(1)
			s.stats.stored.Add(n)
			base := int64(f) * s.l.FrameSize
			for ; next < len(pieces) && pieces[next].f == f; next++ {
				p := pieces[next].r
				if err := fn(p, bytes.NewReader(frame[p.Start-base:p.End-base])); err != nil {
					if errors.Is(err, source.ErrCorrupt) {
						corrupt = fmt.Errorf("frames: frame %d: %w", f, err)
						return corrupt // the frame was wrong: File delivers it
					}
					fnErr = err
					return err
				}
				s.stats.decoded.Add(p.Len())
			}
			pos += n
		}
		return nil
	})
	switch {
	case fnErr != nil:
		return nil, fnErr
	case ferr == nil && next == len(pieces):
		return nil, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	s.off.Store(true) // these frames failed: the rest comes from File
	if ferr == nil {
		ferr = errors.New("frames: fewer frames than asked for")
	}
	if corrupt != nil {
		ferr = corrupt
	}
	s.failed.CompareAndSwap(nil, &ferr)
	for _, p := range pieces[next:] {
		left = append(left, p.r)
	}
	return left, nil
}

// Buffers lends buffers for frames to Sources and Readers, so that the
// many files of a run share a few: a mirror rebuilds hundreds of files,
// each through a Source of its own. The zero value is ready to use; it
// is safe for concurrent use.
type Buffers struct{ pool sync.Pool }

// get returns a buffer of n bytes.
func (b *Buffers) get(n int64) *[]byte {
	if p, ok := b.pool.Get().(*[]byte); ok && int64(cap(*p)) >= n {
		*p = (*p)[:n]
		return p
	}
	p := make([]byte, n)
	return &p
}

// put takes a buffer back.
func (b *Buffers) put(p *[]byte) { b.pool.Put(p) }

// merge joins back-to-back ranges.
func merge(rs []source.Range) []source.Range {
	var out []source.Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].End == r.Start {
			out[n-1].End = r.End
		} else {
			out = append(out, r)
		}
	}
	return out
}
