// Package seedscan looks for the blocks of many targets in local files with
// one scan: the index of the delta scan is built over the block records of
// every target at once, so each seed is read and rolled through once however
// many targets it may feed.
//
// This is what a tree mirror needs: a changed file of the new tree may hold
// data of its old version, of a file that moved or was split, of a library
// that also lives in another directory. Scanning every local file once per
// changed target would cost the tree's size times the number of targets;
// seedscan costs the tree's size once per block layout (block size, strong
// hash algorithm, and whether matches need two consecutive blocks) among the
// targets: typically once, twice when some files are large enough for 4 KiB
// blocks.
//
// Targets of one layout may store hashes of different lengths (zsyncmake
// chooses them by file length). The shared index uses the shortest of each
// among them, which every record's longer hash begins with. That lets
// through more chance matches than each control file alone would, but with
// two consecutive blocks to match (at least 2×(2+3) bytes of hashes) the
// odds of a false block in a scan of S bytes stay below S×2^-80, and the
// whole-file hash checks every rebuilt file anyway.
package seedscan

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/prefault"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// Target is one file to rebuild.
type Target struct {
	// Control describes the target; required.
	Control *control.File
	// Matches, if set, holds blocks already known (from an earlier run);
	// they are not looked for again. Scan records what it finds in it.
	// When nil, Scan creates one.
	Matches *stages.Matches
	// Write, if set, receives every run of the target's blocks found in a
	// seed, with indices of the target's own blocks (a stages.Patcher's
	// WriteBlock, typically). Data is valid only during the call; calls
	// come from several goroutines at once.
	Write func(stages.Block) error
}

// Options configures Scan.
type Options struct {
	// Workers is how many segments are scanned at once; 0 means one per
	// physical core.
	Workers int
	// NoSIMD forces the portable MD5 path.
	NoSIMD bool
	// Skim is stages.DeltaOptions.Skim for the scan: 0 looks at every
	// offset of every seed.
	Skim int64
	// Progress, if set, is called with the number of seed bytes scanned
	// since its previous call, from several goroutines.
	Progress func(scanned int64)
	// Scanned, if set, is stages.DeltaOptions.Scanned for the last scan of
	// the seeds (the last block layout among the targets), with seed
	// numbers that are positions in seeds: after it, only Extend reads
	// seed data, and only next to blocks found.
	Scanned func(seed int, start, end int64, found bool)
	// ChunkSums, if set, is stages.DeltaOptions.ChunkSums for every scan
	// of the seeds, with seed numbers that are positions in seeds (the
	// scans of several block layouts report the same sums again).
	ChunkSums func(seed int, start int64, sums []uint32)
}

// ErrLayout is wrapped by the error for a target whose control file cannot
// be scanned (no block size, records that do not match its length).
var ErrLayout = errors.New("control file has an unusable block layout")

// Scan scans every seed for the blocks of every target and returns, per
// target (in the order given), the Matches it found: block locations whose
// seed number is the seed's position in seeds modulo stages.MaxSeeds (more
// seeds than a Matches can tell apart are scanned in batches). Targets sharing a block layout are
// scanned together, with one index over all their blocks; each group reads
// the seeds once, and its scan ends early once every block of the group is
// found.
func Scan(ctx context.Context, targets []Target, seeds []stages.Seed, opts Options) ([]*stages.Matches, error) {
	out := make([]*stages.Matches, len(targets))
	groups := map[layout][]int{}
	var order []layout
	for i, t := range targets {
		f := t.Control
		if f == nil || f.Blocksize <= 0 || int64(f.Checksums.Len()) != f.Blocks() {
			return nil, fmt.Errorf("seedscan: target %d: %w", i, ErrLayout)
		}
		out[i] = t.Matches
		if out[i] == nil {
			out[i] = stages.NewMatches(f.Blocks())
		} else if out[i].Blocks() != f.Blocks() {
			return nil, fmt.Errorf("seedscan: target %d: matches record %d blocks, control file has %d: %w", i, out[i].Blocks(), f.Blocks(), ErrLayout)
		}
		if f.Blocks() == 0 {
			continue
		}
		l := layoutOf(f)
		if _, ok := groups[l]; !ok {
			order = append(order, l)
		}
		groups[l] = append(groups[l], i)
	}
	for k, l := range order {
		g := newGroup(targets, out, groups[l])
		if g.all.Complete() {
			continue
		}
		if err := g.scan(ctx, seeds, opts, k == len(order)-1); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Scans returns how many scans of the seeds Scan makes for targets at most:
// one per layout among them. A caller showing progress multiplies the
// seeds' size by it.
func Scans(targets []Target) int {
	seen := map[layout]bool{}
	for _, t := range targets {
		if t.Control != nil && t.Control.Blocks() > 0 {
			seen[layoutOf(t.Control)] = true
		}
	}
	return len(seen)
}

// layout is what targets must share to be scanned with one index.
type layout struct {
	blocksize int
	alg       strong.Algorithm
	seq       int
}

func layoutOf(f *control.File) layout {
	seq := 1
	if f.HashLengths.SeqMatches == 2 {
		seq = 2
	}
	return layout{f.Blocksize, f.StrongAlgorithm, seq}
}

// group is targets of one layout joined into one virtual target: their
// blocks back to back, each target starting on a block boundary.
type group struct {
	targets []Target
	matches []*stages.Matches
	members []int   // indices into targets
	base    []int64 // first combined block of each member, and the total at the end
	f       *control.File
	all     *stages.Matches // of the combined target
}

func newGroup(targets []Target, matches []*stages.Matches, members []int) *group {
	g := &group{targets: targets, matches: matches, members: members}
	first := targets[members[0]].Control
	var total int64
	rb, sb := first.Checksums.RsumBytes, first.Checksums.StrongBytes
	for _, m := range members {
		g.base = append(g.base, total)
		c := &targets[m].Control.Checksums
		total += int64(c.Len())
		rb, sb = min(rb, c.RsumBytes), min(sb, c.StrongBytes)
	}
	g.base = append(g.base, total)
	// The shortest hashes of the group: a record's longer hash begins with
	// the shorter one, a longer rolling checksum ends with the shorter.
	mask := control.RsumMask(rb)
	c := control.Checksums{
		RsumBytes:   rb,
		StrongBytes: sb,
		Rsum:        make([]uint32, 0, total),
		Strong:      make([]byte, 0, total*int64(sb)),
	}
	prefault.Slice(c.Rsum)
	prefault.Slice(c.Strong)
	for _, m := range members {
		tc := &targets[m].Control.Checksums
		for i, r := range tc.Rsum {
			c.Rsum = append(c.Rsum, r&mask)
			c.Strong = append(c.Strong, tc.StrongOf(i)[:sb]...)
		}
	}
	// Every member but the last takes whole blocks (its last block is
	// recorded zero-padded, as the scan hashes it); the combined length
	// ends with the last member's own.
	bs := int64(first.Blocksize)
	lastF := targets[members[len(members)-1]].Control
	length := (total-lastF.Blocks())*bs + lastF.Length
	g.f = &control.File{
		Header: control.Header{
			Blocksize:       first.Blocksize,
			Length:          length,
			HashLengths:     control.HashLengths{SeqMatches: first.HashLengths.SeqMatches, RsumBytes: rb, StrongBytes: sb},
			StrongAlgorithm: first.StrongAlgorithm,
		},
		Checksums: c,
	}
	g.all = stages.NewMatches(total)
	for k, m := range members {
		tm := matches[m]
		for i := int64(0); i < tm.Blocks(); i++ {
			if seed, off, ok := tm.Lookup(i); ok {
				g.all.Set(g.base[k]+i, seed, off)
			}
		}
	}
	return g
}

// member returns the member holding combined block i.
func (g *group) member(i int64) int {
	return sort.Search(len(g.members), func(k int) bool { return g.base[k+1] > i })
}

// write splits a run of combined blocks at member boundaries and hands each
// piece to its target.
func (g *group) write(b stages.Block) error {
	bs := int64(g.f.Blocksize)
	data := b.Data
	i := b.Index
	for len(data) > 0 {
		k := g.member(i)
		m := g.members[k]
		local := i - g.base[k]
		n := min(g.base[k+1]-i, (int64(len(data))+bs-1)/bs)
		piece := data[:min(int64(len(data)), n*bs)]
		if t := g.targets[m]; t.Write != nil {
			if err := t.Write(stages.Block{Index: local, Data: piece}); err != nil {
				return err
			}
		}
		data = data[len(piece):]
		i += n
	}
	return nil
}

// scan scans seeds for the group's blocks; last says no group after it
// reads the seeds (see Options.Scanned).
func (g *group) scan(ctx context.Context, seeds []stages.Seed, opts Options, last bool) error {
	h, err := simd.NewHasher(g.f.StrongAlgorithm, simd.Options{Fallback: opts.NoSIMD})
	if err != nil {
		return fmt.Errorf("seedscan: %w", err)
	}
	defer h.Close()
	do := stages.DeltaOptions{Workers: opts.Workers, Skim: opts.Skim, Hasher: h, Matches: g.all, OnBlocks: g.write, Progress: opts.Progress}
	// A Matches tells at most MaxSeeds seeds apart: larger sets are scanned
	// in batches of that many, sharing the matches.
	for start := 0; start < len(seeds) && !g.all.Complete(); start += stages.MaxSeeds {
		batch := seeds[start:min(start+stages.MaxSeeds, len(seeds))]
		if last && opts.Scanned != nil {
			do.Scanned = func(seed int, from, to int64, found bool) {
				opts.Scanned(start+seed, from, to, found)
			}
		}
		if opts.ChunkSums != nil {
			do.ChunkSums = func(seed int, from int64, sums []uint32) {
				opts.ChunkSums(start+seed, from, sums)
			}
		}
		if _, err = stages.Delta(ctx, g.f, batch, do); err != nil {
			break
		}
	}
	g.split()
	if err != nil {
		return fmt.Errorf("seedscan: %w", err)
	}
	return nil
}

// split copies the locations of combined blocks into the members' Matches.
func (g *group) split() {
	for k, m := range g.members {
		tm := g.matches[m]
		for i := int64(0); i < tm.Blocks(); i++ {
			if seed, off, ok := g.all.Lookup(g.base[k] + i); ok && !tm.Has(i) {
				tm.Set(i, seed, off)
			}
		}
	}
}
