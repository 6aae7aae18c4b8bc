package stages

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/prefault"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/simd"
)

// DeltaOptions configures Delta.
type DeltaOptions struct {
	// Workers is how many segments are scanned at once; 0 means
	// pipeline.DefaultWorkers.
	Workers int
	// Hasher computes strong hashes; nil creates one for the call. Its
	// algorithm must be the control file's.
	Hasher *simd.Hasher
	// SegmentSize is the length of seed data one worker reads as a unit;
	// 0 means 1 MiB (one tile: 2 workers then hold 2 MiB of seed data;
	// 8 MiB segments cost 15 MB more peak RSS on a 244 MB sync and found
	// the same blocks). It is rounded up to a multiple of the scan's tile
	// (1 MiB, or 4 blocks if that is more): the scan starts afresh at every
	// tile boundary, so the blocks found do not depend on the segment
	// size, only the memory does (a segment buffer per worker). Segments
	// overlap by seq_matches blocks so that no match is lost at a
	// boundary.
	SegmentSize int64
	// Matches, if set, receives the matches and may already hold some
	// (blocks known from elsewhere are not looked for again); nil starts
	// from nothing.
	Matches *Matches
	// OnBlocks, if set, is called with every run of confirmed target
	// blocks as it is found, so writing can start before the scan ends.
	// Data is valid only during the call. It may be called from several
	// goroutines at once. Its error stops the scan.
	OnBlocks func(Block) error
	// Progress, if set, is called with the seed bytes scanned so far, after
	// each segment of the first pass (later passes scan parts of the seeds
	// again and are not counted). It may be called from several
	// goroutines, so a call may report less than one before it.
	Progress func(scanned int64)
	// Scanned, if set, is called after each segment of the first pass
	// with the offsets of its seed that it owns (where a match it looks
	// for may start: the segments of a pass cut each seed into [start,
	// end) ranges; each also reads seq_matches blocks past its end, which
	// the next one owns) and whether it found any block. Later passes only
	// roll through runs of found blocks again, so once every segment of a
	// stretch of a seed has found nothing, the scan will not read that
	// stretch again: a caller may drop its cached pages. It may be called
	// from several goroutines at once.
	Scanned func(seed int, start, end int64, found bool)
	// ChunkSums, if set, is called for every segment of an Aligned seed
	// that the first pass reads, with the rolling checksums
	// (rollsum.Sum.Packed) of the rollsum.ChunkSize-byte chunks of the
	// seed from offset start (a multiple of the chunk size) to the
	// segment's end, the seed's last chunk padded with zeros. The
	// segments of a pass cover each seed, so a caller that collects them
	// has the seed's Seed.ChunkSums for a later scan. sums is valid only
	// during the call. It may be called from several goroutines at once.
	ChunkSums func(seed int, start int64, sums []uint32)

	// Skim, when positive, lets the scan skim over seed data that holds
	// nothing of the target. After Skim bytes of a tile (see SegmentSize)
	// without a match (at once in the first pass over every tile but a
	// seed's first: a run that goes on from the tile before is found by
	// the first window), the scan looks only at the first Skim/8 offsets
	// (two blocks at least) of every Skim/2: a quarter of them. When one of
	// those matches, it goes back Skim bytes (not past where it began to
	// skim) and looks at every offset from there on, as after any match.
	// So a run of target data at least Skim/2 plus three blocks long is
	// always found, and the Skim bytes skimmed before it scanned in full; a
	// shorter run is found when a window falls on it or when a later one
	// matches less than Skim after it, and may be missed when it is alone
	// in a long stretch of other data. Seeds that are mostly other data
	// (executables built by another compiler) then cost about 40 % of the
	// offsets of a full scan. The state starts afresh at every tile, so
	// what a scan finds still does not depend on the workers or the
	// segments. 0 looks at every offset.
	// seedscan.Extend, run after the scan, finds the blocks next to the
	// runs found at the offsets they imply.
	Skim int64

	// tile overrides defaultTile, for tests.
	tile int64
}

// defaultTile is the length of seed data that a scanner scans as a unit:
// it starts afresh at every multiple of it in a seed, whatever the
// segments it reads the seed in.
const defaultTile = 1 << 20

// lanes is how many candidate blocks are confirmed with one strong-hash
// call: md5-simd's lane count.
const lanes = 16

// Delta scans the seeds for blocks of the target described by f and
// returns where each block was found. Blocks that occur several times in
// the target are found at every position. A block is trusted only when its
// rolling checksum and strong hash match, and — when the control file's
// seq_matches is 2 — when the block after it matches the seed data after it
// too, or it continues a run of matches.
//
// Seeds are cut into segments scanned in parallel; the scan ends early when
// every block is found.
func Delta(ctx context.Context, f *control.File, seeds []Seed, opts DeltaOptions) (*Matches, error) {
	d, err := newDelta(f, seeds, opts)
	if err != nil {
		return nil, err
	}
	defer d.close()
	p := pipeline.New(pipeline.Config{Workers: d.opts.Workers})
	pipeline.Sink(p, "scanned", d.scanStages(p), func(context.Context, int64) error { return nil })
	if err := p.Run(ctx); err != nil {
		return d.matches, err
	}
	return d.matches, nil
}

// DeltaStage adds the delta scan to a pipeline: ScanStage, then a stage
// called delta that emits the Matches once every segment is scanned, for
// a fetch stage to work out what is missing. opts.Hasher is required: the
// caller owns its lifetime.
func DeltaStage(p *pipeline.Pipeline, f *control.File, seeds []Seed, opts DeltaOptions) (*pipeline.Stream[*Matches], error) {
	d, err := newStageDelta(f, seeds, opts)
	if err != nil {
		return nil, err
	}
	return pipeline.Fold(p, "delta", d.scanStages(p),
		func(context.Context, int64, func(*Matches) error) error { return nil },
		func(ctx context.Context, emit func(*Matches) error) error { return emit(d.matches) }), nil
}

// ScanStage adds the scan of the seeds to a pipeline, as two stages:
// segments, which cuts the seeds into overlapping pieces, and scan, which
// scans them on opts.Workers workers (so the statistics show how busy they
// are). It emits the length of each segment once it is scanned (0 for the
// segments of later passes, which scan parts of the seeds again), and when
// its output ends every segment is. Matches go to opts.Matches, which is
// required, and found blocks to opts.OnBlocks as they are found (typically
// a Patcher's WriteBlock, so that the scanning workers write them straight
// into the output). opts.Hasher is required: the caller owns its lifetime.
func ScanStage(p *pipeline.Pipeline, f *control.File, seeds []Seed, opts DeltaOptions) (*pipeline.Stream[int64], error) {
	if opts.Matches == nil {
		return nil, errors.New("scan stage: DeltaOptions.Matches is required")
	}
	d, err := newStageDelta(f, seeds, opts)
	if err != nil {
		return nil, err
	}
	return d.scanStages(p), nil
}

// newStageDelta checks the options of a stage adapter.
func newStageDelta(f *control.File, seeds []Seed, opts DeltaOptions) (*delta, error) {
	if opts.Hasher == nil {
		return nil, errors.New("delta stage: DeltaOptions.Hasher is required")
	}
	return newDelta(f, seeds, opts)
}

type delta struct {
	ix        *index
	tile      int64 // the scan starts afresh at multiples of tile (see scan)
	f         *control.File
	seeds     []Seed
	opts      DeltaOptions
	matches   *Matches
	hasher    *simd.Hasher
	ownHasher bool
	bufs      chan *[]byte // segment buffers, at most one per worker
	sums      sync.Pool    // rolling checksum buffers of scanners
	scanned   atomic.Int64 // seed bytes, for Progress
	// grouped[l] is set once every block of the duplicate group led by
	// block l has a location.
	grouped []atomic.Bool
	// earliest[i] is the first place (in the order of seeds and offsets,
	// as seedLoc packs them) where block i was found in the current pass;
	// 0 if it was not (see nextPass).
	earliest []atomic.Uint64
	// runs lists the runs the current pass followed, for the next.
	runsMu sync.Mutex
	runs   []run
	// masks holds the per-segment bit sets of scanners (scanner.mine).
	masks sync.Pool
}

// run is a stretch of seed data that a scanner followed as consecutive
// target blocks, without rolling through it.
type run struct {
	seed       int
	start, end int64 // seed offsets
	first      int64 // the first target block
}

func newDelta(f *control.File, seeds []Seed, opts DeltaOptions) (*delta, error) {
	ix, err := newIndex(f)
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	if len(seeds) > MaxSeeds {
		return nil, fmt.Errorf("delta: %d seeds; at most %d are supported", len(seeds), MaxSeeds)
	}
	d := &delta{ix: ix, f: f, seeds: seeds, opts: opts, matches: opts.Matches, hasher: opts.Hasher,
		grouped: make([]atomic.Bool, ix.n), earliest: make([]atomic.Uint64, ix.n)}
	if d.matches == nil {
		d.matches = NewMatches(f.Blocks())
	} else if d.matches.Blocks() != f.Blocks() {
		return nil, fmt.Errorf("delta: matches record %d blocks, control file has %d", d.matches.Blocks(), f.Blocks())
	}
	if d.hasher == nil {
		h, err := simd.NewHasher(f.StrongAlgorithm, simd.Options{})
		if err != nil {
			return nil, fmt.Errorf("delta: %w", err)
		}
		d.hasher, d.ownHasher = h, true
	} else if d.hasher.Algorithm() != f.StrongAlgorithm {
		return nil, fmt.Errorf("delta: hasher computes %v, control file uses %v", d.hasher.Algorithm(), f.StrongAlgorithm)
	}
	if d.opts.SegmentSize <= 0 {
		d.opts.SegmentSize = 1 << 20
	}
	// Whole tiles per segment; a tile is whole blocks, at least a few.
	bs := int64(f.Blocksize)
	d.tile = opts.tile
	if d.tile <= 0 {
		d.tile = defaultTile
	}
	d.tile = max((d.tile+bs-1)/bs*bs, 4*bs)
	d.opts.SegmentSize = (d.opts.SegmentSize + d.tile - 1) / d.tile * d.tile
	if d.opts.Workers <= 0 {
		d.opts.Workers = pipeline.DefaultWorkers()
	}
	d.bufs = make(chan *[]byte, d.opts.Workers)
	return d, nil
}

func (d *delta) close() {
	if d.ownHasher {
		d.hasher.Close()
	}
}

type segment struct {
	seed       int
	start, end int64 // offsets where a match may start
	pass       *pass
}

// A pass is a round of segments scanned with the same knowledge: the
// blocks found before the pass began. A scanner decides what to do — follow
// a run or stop, take a pair or roll on — by that knowledge and by what it
// found itself in its tile (a fixed stretch of the seed, see scan), never
// by what other workers find meanwhile: so a tile's scan depends on its
// data alone, and identical runs find identical blocks whatever the
// scheduling, the number of workers and the segment size. (Deciding by
// what other workers had found made zsync's "follow only through blocks
// not found yet" stop at different places from run to run, and find
// different blocks.)
//
// The first pass scans every seed. What other workers found would have
// told a scanner that a run it follows is found at an earlier place
// already, and that it had better roll through the data there, which may
// hold other blocks at other alignments (a file stored twice in a tar, at
// different offsets). The next pass does that: it rolls through the runs
// the pass before followed whose blocks were found at an earlier place
// too, knowing every block found so far (see nextPass); and so on while
// such runs are left.
type pass struct {
	again bool          // a pass after the first: it scans seed data again
	known []uint64      // blocks found before the pass, a bit per block
	left  atomic.Int64  // segments not done, plus one until all are emitted
	done  chan struct{} // closed when left reaches 0
}

// newPass returns a pass that knows the blocks found so far.
func (d *delta) newPass() *pass {
	ps := &pass{known: make([]uint64, (d.matches.Blocks()+63)/64), done: make(chan struct{})}
	ps.left.Store(1)
	for i := range d.matches.Blocks() {
		if d.matches.Has(i) {
			ps.known[i>>6] |= 1 << (i & 63)
		}
	}
	return ps
}

// finish records the end of a segment of the pass, or the end of emitting.
func (ps *pass) finish() {
	if ps.left.Add(-1) == 0 {
		close(ps.done)
	}
}

// emitPass emits the segments of one pass and waits until they are
// scanned. It stops early when every block is found.
func (d *delta) emitPass(ctx context.Context, ps *pass, segs []segment, emit func(segment) error) error {
	defer ps.finish()
	for _, sg := range segs {
		// Segments end at multiples of the segment size, which are tile
		// boundaries (see scan).
		for start := sg.start; start < sg.end; {
			if d.matches.Complete() {
				return nil // nothing left to find: stop reading
			}
			end := min((start/d.opts.SegmentSize+1)*d.opts.SegmentSize, sg.end)
			ps.left.Add(1)
			err := emit(segment{seed: sg.seed, start: start, end: end, pass: ps})
			start = end
			if err != nil {
				ps.finish() // not emitted
				return err
			}
		}
	}
	return nil
}

// nextPass returns the regions of the seeds for the next pass: the
// stretches of the runs followed in the pass that ended whose blocks were
// found at an earlier place too (an earlier seed, or earlier in the same
// seed), merged where they overlap. zsync, which scans the seeds in that
// order, would have known those blocks there and rolled through the
// stretch instead of following the run: the data may hold other blocks at
// other alignments (a file stored twice in a tar, at offsets that differ
// by a multiple of 512). The run at the earliest place keeps its blocks,
// as in zsync; so each pass rolls through less, and a block the pass found
// at several places does not send all of them to the next one.
func (d *delta) nextPass() []segment {
	var segs []segment
	bs := int64(d.ix.bs)
	later := func(r run, k int64) bool {
		e := d.earliest[r.first+k].Load()
		return e != 0 && e < seedLoc(r.seed, r.start+k*bs)
	}
	for _, r := range d.runs {
		n := (r.end - r.start) / bs
		for k := int64(0); k < n; k++ {
			if !later(r, k) {
				continue
			}
			from := k
			for k+1 < n && later(r, k+1) {
				k++
			}
			segs = append(segs, segment{seed: r.seed, start: r.start + from*bs, end: r.start + (k+1)*bs})
		}
	}
	d.runs = d.runs[:0]
	for i := range d.earliest {
		d.earliest[i].Store(0)
	}
	slices.SortFunc(segs, func(a, b segment) int {
		if a.seed != b.seed {
			return a.seed - b.seed
		}
		return cmp.Compare(a.start, b.start)
	})
	var merged []segment
	for _, sg := range segs {
		if k := len(merged) - 1; k >= 0 && merged[k].seed == sg.seed && sg.start <= merged[k].end {
			merged[k].end = max(merged[k].end, sg.end)
			continue
		}
		merged = append(merged, sg)
	}
	return merged
}

// seedLoc packs a place in the seeds so that earlier places compare lower
// and none is 0.
func seedLoc(seed int, off int64) uint64 { return uint64(seed)<<offsetBits | uint64(off+1) }

// setEarliest records that block i was found at loc, if that is the
// earliest place so far in this pass.
func (d *delta) setEarliest(i int64, loc uint64) {
	e := &d.earliest[i]
	for {
		old := e.Load()
		if old != 0 && old <= loc || e.CompareAndSwap(old, loc) {
			return
		}
	}
}

// maxPasses bounds the passes of a scan. Each pass after the first rolls
// only through the stretches its predecessor jumped over for blocks found
// at an earlier place too, so the stretches shrink quickly: on the
// consecutive Go release tars (244 MB) the second pass rolls through
// 2.7 MB, the fifth through 0.2 MB, and the tenth finds nothing more.
const maxPasses = 64

// Size returns the length of the segment (pipeline.Sizer).
func (s segment) Size() int64 { return s.end - s.start }

// scanStages adds the scan of every seed to p and returns the stream of
// scanned segment lengths.
func (d *delta) scanStages(p *pipeline.Pipeline) *pipeline.Stream[int64] {
	segments := pipeline.Source(p, "segments", func(ctx context.Context, emit func(segment) error) error {
		if d.ix.n == 0 {
			return nil
		}
		whole := make([]segment, len(d.seeds))
		prefault.Slice(whole) // holds pointers, as treeindex's entries
		for si, s := range d.seeds {
			whole[si] = segment{seed: si, start: 0, end: s.Size}
		}
		segs := whole
		for k := range maxPasses {
			ps := d.newPass()
			ps.again = k > 0
			if err := d.emitPass(ctx, ps, segs, emit); err != nil {
				return err
			}
			pipeline.Wait(ctx, func() {
				select {
				case <-ps.done:
				case <-ctx.Done():
				}
			})
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.matches.Complete() {
				return nil
			}
			if segs = d.nextPass(); len(segs) == 0 {
				return nil
			}
		}
		return nil
	})
	return pipeline.MapUnordered(p, "scan", segments, d.opts.Workers, func(ctx context.Context, seg segment) (int64, error) {
		defer seg.pass.finish()
		if d.matches.Complete() {
			return 0, nil
		}
		if seg.pass.again {
			return 0, d.scan(ctx, seg) // counted in the first pass
		}
		return seg.end - seg.start, d.scan(ctx, seg)
	})
}

// scanner is one worker's state while it scans a segment.
type scanner struct {
	d      *delta
	ix     *index
	seed   int
	base   int64  // seed offset of buf[0]
	buf    []byte // segment data, then the overlap, then zero padding past the seed's end
	end    int    // positions p < end may start a match
	digest []byte // strong hashes of candidate blocks
	blocks [][]byte
	// known is a key whose candidates are all found already: runs of
	// zeros and other repeated data give the same key at every offset, and
	// found blocks stay found, so its chain need not be walked again.
	known     uint64
	haveKnown bool
	// before marks the blocks found before the segment's pass.
	before []uint64
	// mine marks the duplicate groups (by their first block) that this
	// scanner has found in its tile, a bit per block; mineSet says whether
	// any is marked.
	mine    []uint64
	mineSet bool
	// pendI, pendP, pendN: a run of pendN found blocks from target block
	// pendI at buffer position pendP, not yet handed to OnBlocks (write).
	pendI int64
	pendP int
	pendN int
	// runs lists the runs followed in the first pass.
	runs []run
	// skimAtOnce has a skimming scan (DeltaOptions.Skim) skim from the
	// start, not after Skim positions.
	skimAtOnce bool
}

// has reports whether block i is known to the scanner: found before its
// pass began, or found by the scanner itself (see pass).
func (sc *scanner) has(i int64) bool {
	if sc.before[i>>6]&(1<<(i&63)) != 0 {
		return true
	}
	g := int64(sc.ix.dupFirst[i])
	return sc.mine[g>>6]&(1<<(g&63)) != 0
}

func (d *delta) scan(ctx context.Context, seg segment) error {
	ix := d.ix
	bs := int64(ix.bs)
	s := d.seeds[seg.seed]
	if s.Aligned && d.passOver(s, seg) {
		d.scannedSegment(seg, false)
		return nil
	}
	// The segment, plus seq blocks after it, zero-padded past the seed's
	// end: zsync pads seeds with zeros so a short last block can match.
	want := seg.end - seg.start + int64(ix.seq)*bs
	bp := d.buffer(want)
	defer d.putBuffer(bp)
	buf := (*bp)[:want]
	// A run followed into the zero padding past the seed's end gives a
	// second-pass segment that may start beyond it: nothing to read then.
	avail := max(0, min(want, s.Size-seg.start))
	n, err := s.R.ReadAt(buf[:avail], seg.start)
	if int64(n) < avail {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read seed %s at %d: %w", s.Name, seg.start, err)
	}
	clear(buf[avail:])
	err = nil // ReadAt may say io.EOF with all it was asked for
	if s.Aligned && d.opts.ChunkSums != nil && !seg.pass.again {
		d.chunkSums(seg, buf[:min(avail, seg.end-seg.start)])
	}
	mp, _ := d.masks.Get().(*[]uint64)
	if mp == nil {
		m := make([]uint64, len(seg.pass.known))
		mp = &m
	}
	defer d.masks.Put(mp)
	clear(*mp)
	found := false
	digest := make([]byte, lanes*ix.sb)
	blocks := make([][]byte, 0, lanes)
	// The scan starts afresh at every tile boundary of the seed, as if each
	// tile were a segment of its own: what a scanner finds then depends
	// on the tile, never on how the seed was cut into segments.
	for t0 := seg.start; t0 < seg.end && err == nil; {
		t1 := min((t0/d.tile+1)*d.tile, seg.end)
		off := t0 - seg.start
		sc := &scanner{
			d: d, ix: ix, seed: seg.seed, base: t0,
			buf:    buf[off : t1-seg.start+int64(ix.seq)*bs],
			end:    int(t1 - t0),
			digest: digest,
			blocks: blocks,
			before: seg.pass.known,
			mine:   *mp,
			// A tile of the first pass after the seed's first skims
			// from its start (see DeltaOptions.Skim).
			skimAtOnce: !seg.pass.again && t0 > 0 && t0%d.tile == 0,
		}
		if s.Aligned {
			err = sc.scanAligned(ctx)
		} else {
			err = sc.scan(ctx)
		}
		if err == nil {
			err = sc.flush()
		}
		if sc.mineSet {
			found = true
			clear(*mp)
		}
		if len(sc.runs) > 0 {
			found = true
			d.runsMu.Lock()
			d.runs = append(d.runs, sc.runs...)
			d.runsMu.Unlock()
		}
		t0 = t1
	}
	if err == nil {
		d.scannedSegment(seg, found)
	} else if d.opts.Progress != nil && !seg.pass.again {
		d.opts.Progress(d.scanned.Add(seg.end - seg.start))
	}
	return err
}

// scannedSegment reports a segment of the first pass scanned (Progress,
// Scanned).
func (d *delta) scannedSegment(seg segment, found bool) {
	if seg.pass.again {
		return
	}
	if d.opts.Progress != nil {
		d.opts.Progress(d.scanned.Add(seg.end - seg.start))
	}
	if d.opts.Scanned != nil {
		d.opts.Scanned(seg.seed, seg.start, seg.end, found)
	}
}

// chunkSums reports the chunk checksums of data, the part of the segment
// seg of an aligned seed that is in the seed, to DeltaOptions.ChunkSums:
// the seed's last chunk is padded with the zeros that follow data in the
// segment's buffer.
func (d *delta) chunkSums(seg segment, data []byte) {
	const c = rollsum.ChunkSize
	if seg.start%c != 0 || len(data) == 0 {
		return
	}
	sums := make([]uint32, 0, (len(data)+c-1)/c)
	full := len(data) / c * c
	for i := 0; i < full; i += c {
		sums = append(sums, rollsum.Block(data[i:i+c]).Packed())
	}
	if full < len(data) {
		var last [c]byte
		copy(last[:], data[full:])
		sums = append(sums, rollsum.Block(last[:]).Packed())
	}
	d.opts.ChunkSums(seg.seed, seg.start, sums)
}

// passOver reports whether the segment seg of the aligned seed s can be
// passed over unread: the seed's chunk checksums (Seed.ChunkSums) give
// every block at a multiple of the block size in the segment a key (with
// the next block's, for seq_matches 2) that the index's filters refuse,
// and none is the last block's checksum, which scanAligned tries apart.
// Those are the offsets scanAligned looks at, and the checks it makes
// before it reads anything more than the blocks' checksums.
func (d *delta) passOver(s Seed, seg segment) bool {
	ix := d.ix
	bs := int64(ix.bs)
	const c = rollsum.ChunkSize
	if len(s.ChunkSums) == 0 || bs%c != 0 || int64(len(s.ChunkSums)) != (s.Size+c-1)/c {
		return false
	}
	k := int(bs / c)
	sum := func(o int64) uint32 { // the block at offset o, zero-padded
		j := min(int(o/c), len(s.ChunkSums))
		return rollsum.Combine(s.ChunkSums[j:], k).Packed() & ix.mask
	}
	last := ix.lastRsum()
	for o := (seg.start + bs - 1) / bs * bs; o < seg.end; o += bs {
		r0 := sum(o)
		key := uint64(r0)
		if ix.seq == 2 {
			key = key<<32 | uint64(sum(o+bs))
		}
		if ix.maybe(key) || uint64(r0) == last {
			return false
		}
	}
	return true
}

// buffer returns a segment buffer of at least n bytes: a free one, or a
// new one. The free buffers are kept in a channel rather than a sync.Pool,
// which the collector empties: with the collector running often (a low
// GOGC, a memory limit) every segment would allocate its megabytes anew.
func (d *delta) buffer(n int64) *[]byte {
	select {
	case bp := <-d.bufs:
		if int64(cap(*bp)) >= n {
			return bp
		}
	default:
	}
	b := make([]byte, n)
	return &b
}

// putBuffer keeps a segment buffer for the next segment; a buffer beyond
// one per worker is left to the collector.
func (d *delta) putBuffer(bp *[]byte) {
	select {
	case d.bufs <- bp:
	default:
	}
}

// scan rolls through the segment. At each offset it checks the filters,
// then the hash chain, then the strong hashes; after a match it checks the
// following blocks directly, in batches that fill the SIMD lanes, and rolls
// byte by byte again only where that fails. The rolling runs in two passes
// per chunk of positions (see roll.go).
func (sc *scanner) scan(ctx context.Context) error {
	ix := sc.ix
	bs := ix.bs
	seq2 := ix.seq == 2
	last := ix.lastRsum()
	sp, _ := sc.d.sums.Get().(*[]uint32)
	if sp == nil {
		sp = new([]uint32)
	}
	r := newRoller(sc.buf, bs, ix.seq, ix.mask, *sp)
	defer func() {
		*sp = r.sums
		sc.d.sums.Put(sp)
	}()
	r.reset(0)
	p := 0 // the next position to examine; r.base <= p
	// Skimming (DeltaOptions.Skim): after skim positions since the end of
	// the last match (hit; at first the tile's start, or skim positions
	// before it with skimAtOnce), only the first window positions of every
	// step are looked at. When a window matches
	// at q, the scan goes back skim positions (or to skipped, where
	// skimming began, if that is nearer), looks at every position up to q
	// (stop), and goes on from the end of the run found at q (resume).
	skim := int(sc.d.opts.Skim)
	window := max(skim/8, 2*bs)
	step := max(skim/2, window)
	hit := 0
	if sc.skimAtOnce {
		hit = -skim
	}
	skipped, stop, resume := -1, -1, 0
outer:
	for p < sc.end {
		if ctx.Err() != nil || sc.d.matches.Complete() {
			return ctx.Err()
		}
		if stop >= 0 && p >= stop {
			p, stop = max(p, resume), -1
			hit = p
			if p >= sc.end {
				break
			}
			r.reset(p)
			continue
		}
		n := min(r.chunk, sc.end-r.base)
		if stop >= 0 {
			n = min(n, stop-r.base)
		}
		skimming := skim > 0 && stop < 0 && p-hit >= skim
		if skimming {
			n = min(n, window)
			if skipped < 0 {
				skipped = p
			}
		} else {
			skipped = -1
		}
		look := 0
		if seq2 {
			look = bs
		}
		r.fill(n + look)
		for i := p - r.base; i < n; i++ {
			if seq2 {
				i += probe2(r.sums[i:n], r.sums[i+bs:n+bs], ix, last)
			} else {
				i += probe1(r.sums[i:n], ix)
			}
			if i >= n {
				break
			}
			q := r.base + i
			r0 := r.sums[i]
			key := uint64(r0)
			if seq2 {
				key = key<<32 | uint64(r.sums[i+bs])
			}
			if sc.haveKnown && key == sc.known {
				// Every candidate here is found already. In a run of zeros
				// (the key of zero windows is 0) every offset looks like
				// this: jump to the end of the run instead of rolling
				// through it, unless the last block (zeros too, perhaps)
				// is still looked for.
				if key == 0 && last != 0 {
					if next := sc.skipZeros(q); next > q+1 {
						if err := sc.checkAligned(q+1, next); err != nil {
							return err
						}
						p = next
						if p < sc.end {
							r.reset(p)
						}
						continue outer
					}
				}
				continue
			}
			if ix.maybe(key) {
				next, err := sc.tryChain(q, key)
				if err == nil && next > q+1 {
					err = sc.checkAligned(q+1, next)
				}
				if err != nil {
					return err
				}
				if next > q {
					p, hit = next, next
					if skimming && skipped < q {
						p, stop, resume = max(skipped, q-skim), q, next
					}
					if p < sc.end {
						r.reset(p)
					}
					continue outer
				}
			}
			if uint64(r0) == last {
				if sc.has(int64(ix.last)) {
					last = 1 << 32
				} else if err := sc.tryLast(q); err != nil {
					return err
				}
			}
		}
		if skimming {
			p = r.base + step
			if p < sc.end {
				r.reset(p)
			}
			continue
		}
		r.advance(n)
		p = r.base
	}
	return nil
}

// scanAligned is scan for an aligned seed (Seed.Aligned): it looks at the
// offsets of the buffer that are multiples of the block size in the seed,
// with the checksums of the block there (and of the next, for
// seq_matches 2) computed directly, and follows a match as scan does. A
// run ends at a multiple of the block size, so the offsets after it stay
// aligned.
func (sc *scanner) scanAligned(ctx context.Context) error {
	ix := sc.ix
	bs := ix.bs
	seq2 := ix.seq == 2
	last := ix.lastRsum()
	sum := func(p int) uint32 { return rollsum.Block(sc.buf[p:p+bs]).Packed() & ix.mask }
	p := int((int64(bs) - sc.base%int64(bs)) % int64(bs))
	var r1 uint32
	have := false // r1 holds the checksum of the block at p
	for k := 0; p < sc.end; k++ {
		if k&63 == 0 && (ctx.Err() != nil || sc.d.matches.Complete()) {
			return ctx.Err()
		}
		var r0 uint32
		if have {
			r0 = r1
		} else {
			r0 = sum(p)
		}
		key := uint64(r0)
		if seq2 {
			r1 = sum(p + bs)
			key = key<<32 | uint64(r1)
		}
		have = seq2
		if !(sc.haveKnown && key == sc.known) && ix.maybe(key) {
			next, err := sc.tryChain(p, key)
			if err != nil {
				return err
			}
			if next > p {
				p, have = next, false
				continue
			}
		}
		if uint64(r0) == last {
			if sc.has(int64(ix.last)) {
				last = 1 << 32
			} else if err := sc.tryLast(p); err != nil {
				return err
			}
		}
		p += bs
	}
	return nil
}

// checkAligned looks for the target's own blocks at their own offsets in
// the positions [from, to) of the buffer, which the rolling scan jumps
// over: a run matched at another alignment (the same data elsewhere in the
// target, as tar members at 512-byte offsets) may cover the place where a
// block that occurs nowhere else sits. Without this, a seed identical to
// the target could leave a few blocks to fetch. Only blocks still missing
// are checked, the weak checksum first; with seq_matches 2 the next block
// must match at its own offset too, as in tryChain.
func (sc *scanner) checkAligned(from, to int) error {
	ix := sc.ix
	bs := int64(ix.bs)
	m := sc.d.matches
	to = min(to, sc.end)
	for o := (sc.base + int64(from) + bs - 1) / bs * bs; o < sc.base+int64(to); o += bs {
		i := o / bs
		p := int(o - sc.base)
		if i >= int64(ix.n) || m.Has(i) || rollsum.Block(sc.buf[p:p+ix.bs]).Packed()&ix.mask != ix.rsum[i] {
			continue
		}
		sc.blocks = append(sc.blocks[:0], sc.buf[p:p+ix.bs])
		if ix.seq == 2 && i != int64(ix.last) {
			sc.blocks = append(sc.blocks, sc.buf[p+ix.bs:p+2*ix.bs])
		}
		k := len(sc.blocks)
		sc.d.hasher.SumBlocks(sc.digest[:k*ix.sb], ix.sb, sc.blocks)
		if !bytes.Equal(sc.digest[:ix.sb], ix.strongOf(int(i))) ||
			k == 2 && !bytes.Equal(sc.digest[ix.sb:2*ix.sb], ix.strongOf(int(i)+1)) {
			continue
		}
		if err := sc.found(i, p, 1); err != nil {
			return err
		}
	}
	return nil
}

// skipZeros returns the first position after q whose window (with the
// next one, for seq_matches 2) is not all zeros, when the windows at q are;
// otherwise q.
func (sc *scanner) skipZeros(q int) int {
	span := sc.ix.seq * sc.ix.bs
	z := firstNonZero(sc.buf, q)
	if z < q+span {
		return q // not a run of zeros after all: the checksum collided
	}
	return z - span + 1
}

// firstNonZero returns the index of the first non-zero byte of b at or after
// from, or len(b).
func firstNonZero(b []byte, from int) int {
	i := from
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return len(b)
}

// tryChain checks the hash chain of key at position p. On a confirmed match
// it records it, follows the run as far as it goes, and returns the position
// after the run; otherwise it returns p.
func (sc *scanner) tryChain(p int, key uint64) (int, error) {
	ix := sc.ix
	bs := ix.bs
	hashed, hashed2 := false, false
	allKnown := true
	defer func() {
		if allKnown {
			sc.known, sc.haveKnown = key, true
		}
	}()
	b := (key * hashMul) >> ix.tableShift
	for e := ix.heads[b]; e >= 0; e = ix.entries[e].next {
		en := &ix.entries[e]
		if en.key != key {
			continue
		}
		i := int64(en.blk)
		if sc.has(i) && (ix.seq == 1 || sc.has(i+1)) {
			continue // nothing to gain here
		}
		allKnown = false
		// The block at p is hashed first, the one after it only for a
		// candidate whose first block matches: most candidates that get
		// this far are chance matches of the rolling checksums (two bytes
		// each, in the records of zsync's seq_matches 2), which the first
		// hash rejects.
		if !hashed {
			sc.blocks = append(sc.blocks[:0], sc.buf[p:p+bs])
			sc.d.hasher.SumBlocks(sc.digest[:ix.sb], ix.sb, sc.blocks)
			hashed = true
		}
		if !bytes.Equal(sc.digest[:ix.sb], ix.strongOf(int(i))) {
			continue
		}
		if ix.seq == 2 && !hashed2 {
			sc.blocks = append(sc.blocks[:0], sc.buf[p+bs:p+2*bs])
			sc.d.hasher.SumBlocks(sc.digest[ix.sb:2*ix.sb], ix.sb, sc.blocks)
			hashed2 = true
		}
		// As zsync: the second block of the pair must match too, unless it
		// is known already (its rolling checksum matched all the same);
		// then only block i is taken from here.
		count := ix.seq
		if ix.seq == 2 && !bytes.Equal(sc.digest[ix.sb:2*ix.sb], ix.strongOf(int(i)+1)) {
			if !sc.has(i + 1) {
				continue
			}
			count = 1
		}
		if err := sc.found(i, p, count); err != nil {
			return p, err
		}
		next, err := sc.follow(i+int64(count), p+count*bs)
		sc.runs = append(sc.runs, run{seed: sc.seed, start: sc.base + int64(p), end: sc.base + int64(next), first: i})
		return next, err
	}
	return p, nil
}

// tryLast checks the target's last block alone at position p (with
// seq_matches 2 it has no successor to pair with).
func (sc *scanner) tryLast(p int) error {
	ix := sc.ix
	sc.blocks = append(sc.blocks[:0], sc.buf[p:p+ix.bs])
	sc.d.hasher.SumBlocks(sc.digest[:ix.sb], ix.sb, sc.blocks)
	if bytes.Equal(sc.digest[:ix.sb], ix.strongOf(int(ix.last))) {
		return sc.found(int64(ix.last), p, 1)
	}
	return nil
}

// follow confirms the blocks expected after a match — target block i at
// position p, i+1 at p+bs, … — up to lanes at a time, and returns the
// position after the last confirmed one.
//
// Inside a run of matches the weak checksum saves nothing: the strong hash
// has to be computed anyway. So only the first block of each batch is
// checked with the weak checksum (a cheap way to notice that the run has
// ended); the batch then goes to the SIMD lanes whole, and the longest
// confirmed prefix is taken.
//
// Like zsync, a run is followed only through blocks not found yet: data
// that holds known blocks may still hold unknown ones at other offsets
// (the same records at another alignment), which rolling finds and
// following would jump over.
func (sc *scanner) follow(i int64, p int) (int, error) {
	ix := sc.ix
	bs := ix.bs
	for {
		if i >= int64(ix.n) || p+bs > len(sc.buf) || sc.has(i) ||
			rollsum.Block(sc.buf[p:p+bs]).Packed()&ix.mask != ix.rsum[i] {
			return p, nil
		}
		sc.blocks = sc.blocks[:0]
		for j := 0; j < lanes; j++ {
			q := p + j*bs
			if i+int64(j) >= int64(ix.n) || q+bs > len(sc.buf) || j > 0 && sc.has(i+int64(j)) {
				break
			}
			sc.blocks = append(sc.blocks, sc.buf[q:q+bs])
		}
		k := len(sc.blocks)
		sc.d.hasher.SumBlocks(sc.digest[:k*ix.sb], ix.sb, sc.blocks)
		ok := 0
		for ok < k && bytes.Equal(sc.digest[ok*ix.sb:(ok+1)*ix.sb], ix.strongOf(int(i)+ok)) {
			ok++
		}
		if ok > 0 {
			if err := sc.found(i, p, ok); err != nil {
				return p, err
			}
		}
		p += ok * bs
		i += int64(ok)
		if ok < k || k < lanes {
			return p, nil
		}
	}
}

// found records that target blocks i … i+count-1 are at buffer position p,
// with every duplicate of each, and hands the data on.
func (sc *scanner) found(i int64, p int, count int) error {
	ix := sc.ix
	bs := ix.bs
	m := sc.d.matches
	on := sc.d.opts.OnBlocks
	newRun := false
	for j := range count {
		blk := i + int64(j)
		off := sc.base + int64(p+j*bs)
		leader := ix.dupFirst[blk]
		sc.mine[leader>>6] |= 1 << (leader & 63)
		sc.mineSet = true
		if m.Set(blk, sc.seed, off) {
			newRun = true
		}
		sc.d.setEarliest(blk, seedLoc(sc.seed, off))
		if sc.d.grouped[leader].Load() {
			continue // every block of the group has a location already
		}
		for g := leader; g >= 0; g = ix.dupNext[g] {
			if int64(g) >= i && int64(g) < i+int64(count) {
				continue // in the run: recorded above, written below
			}
			if !m.Set(int64(g), sc.seed, off) {
				continue
			}
			if on != nil {
				if err := on(Block{Index: int64(g), Data: sc.buf[p+j*bs : p+(j+1)*bs]}); err != nil {
					return err
				}
			}
		}
		if ix.dupNext[leader] >= 0 {
			// Walked once, the group need not be walked again: without
			// this, a target of many identical blocks (runs of zeros)
			// costs the group's size at every one of them.
			sc.d.grouped[leader].Store(true)
		}
	}
	if newRun && on != nil {
		return sc.write(i, p, count)
	}
	return nil
}

// maxPending is the most data of a run that a scanner collects before it
// hands it to OnBlocks: a run followed 16 blocks at a time is written in
// calls of up to this size instead of one per 16 blocks.
const maxPending = 1 << 20

// write hands target blocks i … i+count-1 at buffer position p to
// OnBlocks, joined to the blocks before them when they continue a run;
// flush hands on what is left.
func (sc *scanner) write(i int64, p, count int) error {
	bs := sc.ix.bs
	if sc.pendN > 0 && sc.pendI+int64(sc.pendN) == i && sc.pendP+sc.pendN*bs == p && (sc.pendN+count)*bs <= maxPending {
		sc.pendN += count
		return nil
	}
	if err := sc.flush(); err != nil {
		return err
	}
	sc.pendI, sc.pendP, sc.pendN = i, p, count
	return nil
}

// flush hands the blocks collected by write to OnBlocks.
func (sc *scanner) flush() error {
	if sc.pendN == 0 {
		return nil
	}
	n := sc.pendN
	sc.pendN = 0
	return sc.d.opts.OnBlocks(Block{Index: sc.pendI, Data: sc.buf[sc.pendP : sc.pendP+n*sc.ix.bs]})
}
