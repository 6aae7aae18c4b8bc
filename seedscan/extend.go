package seedscan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/sourcegraph/conc/pool"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/prefault"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// ExtendReach is how many blocks past the last found block Extend tries at
// the offsets the found block implies.
const ExtendReach = 64

// Extend looks again, after Scan, for blocks still missing next to blocks
// found. The scan trusts a block only when the block after it matches too
// (seq_matches 2), so a block of unchanged data between two edits — common
// in binaries, where small edits are everywhere — is never found by it.
// Extend takes each found block as an anchor: target block i+k (or i−k)
// should sit k blocks after (before) it in the same seed if the data between
// was edited in place, and it is checked there against its own record, its
// rolling checksum and strong hash, up to ExtendReach blocks away. A block
// found so becomes the anchor in turn, so that a stretch edited every few
// blocks (a binary whose addresses moved) is followed to its end: on
// go1.22.12 -> go1.24.5 that finds 721 blocks instead of 360. A block
// whose record others share is no anchor (see run).
//
// ms are Scan's results (updated in place); found blocks go to the targets'
// Write like Scan's. It returns the number of blocks found. With more seeds
// than a Matches can tell apart (stages.MaxSeeds) it does nothing.
func Extend(ctx context.Context, targets []Target, ms []*stages.Matches, seeds []stages.Seed, opts Options) (int64, error) {
	if len(seeds) > stages.MaxSeeds {
		return 0, nil
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = pipeline.DefaultWorkers()
	}
	found := make([]int64, len(targets))
	// The read windows go from one target's extender to the next: a new
	// 256 KiB window per target (860 of them on go1.22.12 -> go1.24.5) cost
	// more in clearing and collecting than the reads themselves.
	bufs := make(chan []byte, workers)
	p := pool.New().WithErrors().WithContext(ctx).WithMaxGoroutines(workers)
	for ti := range targets {
		if ms[ti] == nil || ms[ti].Found() == 0 || ms[ti].Complete() {
			continue
		}
		p.Go(func(ctx context.Context) error {
			e := &extender{t: targets[ti], m: ms[ti], seeds: seeds}
			select {
			case e.buf = <-bufs:
			default:
			}
			n, err := e.run(ctx)
			select {
			case bufs <- e.buf[:0]:
			default:
			}
			found[ti] = n
			return err
		})
	}
	err := p.Wait()
	var total int64
	for _, n := range found {
		total += n
	}
	if err != nil {
		return total, fmt.Errorf("seedscan: extend: %w", err)
	}
	return total, nil
}

// extender extends the matches of one target.
type extender struct {
	t     Target
	m     *stages.Matches
	seeds []stages.Seed
	// A window of seed data, read ahead: anchors are visited in order.
	seed  int
	off   int64
	buf   []byte
	block []byte
}

const extendWindow = 256 << 10

func (e *extender) run(ctx context.Context) (int64, error) {
	f := e.t.Control
	n := f.Blocks()
	bs := int64(f.Blocksize)
	e.seed = -1
	e.block = make([]byte, bs)
	h := f.StrongAlgorithm.New()
	mask := control.RsumMask(f.Checksums.RsumBytes)
	shared := sharedRecords(&f.Checksums)
	var found int64
	try := func(i int64, seed int, off, lo, hi int64) error {
		if off < 0 || seed >= len(e.seeds) || e.m.Has(i) {
			return nil
		}
		data, err := e.read(seed, off, bs, lo, hi)
		if err != nil {
			return err
		}
		if rollsum.Block(data).Packed()&mask != f.Checksums.Rsum[i] {
			return nil
		}
		h.Reset()
		h.Write(data)
		if !bytes.Equal(h.Sum(nil)[:f.Checksums.StrongBytes], f.Checksums.StrongOf(int(i))) {
			return nil
		}
		if !e.m.Set(i, seed, off) {
			return nil
		}
		found++
		if e.t.Write != nil {
			return e.t.Write(stages.Block{Index: i, Data: data})
		}
		return nil
	}
	for _, dir := range []int64{1, -1} {
		start, end := int64(0), n
		if dir < 0 {
			start, end = n-1, -1
		}
		anchor, aSeed, aOff := int64(-1), 0, int64(0)
		for i := start; i != end; i += dir {
			if err := ctx.Err(); err != nil {
				return found, err
			}
			if seed, off, ok := e.m.Lookup(i); ok {
				// A block whose record others share (zeros, a file
				// stored twice) may have been found at any of its
				// copies, whichever a scanner got to first: it tells
				// nothing certain about its neighbours, and anchoring on
				// it would make the result depend on the scheduling.
				if !shared[i] {
					anchor, aSeed, aOff = i, seed, off
				}
				continue
			}
			if anchor < 0 || (i-anchor)*dir > ExtendReach {
				continue
			}
			off := aOff + (i-anchor)*bs
			lo, hi := off, off+bs
			if !e.holds(aSeed, off, bs) {
				// Read the blocks still to try from here on at once:
				// the missing run, up to the reach of the anchor.
				k := int64(1)
				for j := i + dir; j != end && (j-anchor)*dir <= ExtendReach && !e.m.Has(j); j += dir {
					k++
				}
				if dir > 0 {
					hi = off + k*bs
				} else {
					lo = off - (k-1)*bs
				}
			}
			if err := try(i, aSeed, off, lo, hi); err != nil {
				return found, err
			}
			if s, o, ok := e.m.Lookup(i); ok && s == aSeed && o == off && !shared[i] {
				anchor, aOff = i, off // found here: the next reach starts from it
			}
		}
	}
	return found, nil
}

// sharedRecords marks the blocks whose record (rolling checksum and the
// first strong hash bytes) another block of the target has too. It runs
// between the scan and the fetch, on one core, so it is made to be quick:
// an open-addressing table of block numbers, not a Go map (on the
// reference pair's 54,883 blocks 2.1–3.2 ms against 5.6–12.4 ms for a map
// under load, and 512 KiB against about 1.1 MB). A target of 2^32 blocks
// or more (16 TiB at 4 KiB) has every block marked: no anchors, nothing
// extended.
func sharedRecords(c *control.Checksums) []bool {
	n := c.Len()
	shared := make([]bool, n)
	prefault.Slice(shared) // read before written, as slots
	if uint64(n) >= math.MaxUint32 {
		for i := range shared {
			shared[i] = true
		}
		return shared
	}
	// Slots hold 1 + the first block with a key, 0 when free; at least
	// twice as many slots as blocks keeps the probes short.
	shift := 64 - bits.Len(uint(2*n))
	slots := make([]uint32, 1<<(64-shift))
	prefault.Slice(slots) // probed before filled: see prefault
	mask := len(slots) - 1
	for i := range n {
		k := recordKey(c, i)
		h := int((k * 0x9e3779b97f4a7c15) >> shift) // Fibonacci hashing
		for {
			if slots[h] == 0 {
				slots[h] = uint32(i + 1)
				break
			}
			if j := int(slots[h] - 1); recordKey(c, j) == k {
				shared[i], shared[j] = true, true
				break
			}
			h = (h + 1) & mask
		}
	}
	return shared
}

// recordKey packs block i's rolling checksum and up to four bytes of its
// strong hash into one word.
func recordKey(c *control.Checksums, i int) uint64 {
	strong := c.StrongOf(i)
	k := uint64(c.Rsum[i])
	for j := 0; j < min(4, len(strong)); j++ {
		k = k<<8 | uint64(strong[j])
	}
	return k
}

// holds reports whether the window holds the n bytes of seed at off.
func (e *extender) holds(seed int, off, n int64) bool {
	return seed == e.seed && off >= e.off && off+n <= e.off+int64(len(e.buf))
}

// read returns n bytes of seed at off, zero-padded past its end as the
// scan pads it, from the window when it holds them; otherwise it first
// reads [lo, hi) into the window (the blocks about to be tried, which
// include these; at most extendWindow bytes from off on). Reading only
// those, not a fixed window around off, keeps the reads to what is tried:
// with 256 KiB windows, the copies from the page cache took 85 % of
// Extend's time on go1.22.12 -> go1.24.5 (1,634 missing runs).
func (e *extender) read(seed int, off, n, lo, hi int64) ([]byte, error) {
	s := e.seeds[seed]
	if off >= s.Size {
		clear(e.block)
		return e.block, nil
	}
	if !e.holds(seed, off, n) {
		start := max(0, lo, off+n-extendWindow)
		size := min(max(hi, off+n), start+extendWindow, s.Size) - start
		if cap(e.buf) < extendWindow {
			e.buf = make([]byte, extendWindow)
		}
		e.buf = e.buf[:size]
		if k, err := s.R.ReadAt(e.buf, start); int64(k) < size {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read seed %s at %d: %w", s.Name, start, err)
		}
		e.seed, e.off = seed, start
	}
	from := off - e.off
	k := copy(e.block, e.buf[from:min(from+n, int64(len(e.buf)))])
	clear(e.block[k:])
	return e.block, nil
}
