package stages

import (
	"bytes"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/simd"
)

// zsyncScan is a model of zsync 0.6.2's scan (librcksum/rsum.c,
// rcksum_submit_source_data and check_checksums_on_hash_chain), serial and
// byte by byte, for tests to compare Delta with: it returns which target
// blocks zsync would find in the seeds, scanned in order.
//
// At each offset it walks the chain of target blocks not found yet whose
// weak checksums (of the block, and with seq_matches 2 of the next one)
// match, and takes every one whose strong hashes match; after a match it
// jumps seq_matches blocks and checks the block after the last one taken,
// alone ("onlyone"), block by block, until the run fails or reaches a
// block known when it started; then it rolls on.
func zsyncScan(t testing.TB, f *control.File, h *simd.Hasher, seeds ...[]byte) []bool {
	found, _ := zsyncScanAt(t, f, h, seeds...)
	return found
}

// zsyncScanAt is zsyncScan that also returns where each block was found
// (seed<<48 | offset; -1 if not).
func zsyncScanAt(t testing.TB, f *control.File, h *simd.Hasher, seeds ...[]byte) ([]bool, []int64) {
	t.Helper()
	ix, err := newIndex(f)
	if err != nil {
		t.Fatal(err)
	}
	n := int(ix.n)
	bs := ix.bs
	seq := ix.seq
	found := make([]bool, n)
	where := make([]int64, n)
	for i := range where {
		where[i] = -1
	}
	var cur int64 // seed<<48 | x of the block being written first
	// zsync's hash holds every block but, with seq_matches 2, the pair
	// of the last block has a blank successor that never matches.
	chain := map[uint64][]int{}
	key := func(i int) uint64 {
		k := uint64(ix.rsum[i])
		if seq == 2 {
			k = k<<32 | uint64(ix.rsum[i+1])
		}
		return k
	}
	for i := 0; i < n-(seq-1); i++ {
		chain[key(i)] = append(chain[key(i)], i)
	}
	digest := make([]byte, ix.sb)
	strongAt := func(data []byte, x, i int) bool {
		h.SumBlocks(digest, ix.sb, [][]byte{data[x : x+bs]})
		return bytes.Equal(digest, ix.strongOf(i))
	}
	nextKnownFrom := func(id int) int {
		for j := id; j < n; j++ {
			if found[j] {
				return j
			}
		}
		return n
	}
	write := func(from, to int) { // inclusive
		for i := from; i <= to; i++ {
			found[i] = true
			where[i] = cur + int64(i-from)*int64(bs)
		}
	}
	for si, s := range seeds {
		ctx := seq * bs
		data := append(bytes.Clone(s), make([]byte, ctx+bs)...)
		limit := len(s)
		nextMatch, nextKnown := -1, n
		// r0 and r1: the checksums of the windows at x and x+bs.
		var r0, r1 rollsum.Sum
		at := -2
		weak := func(x int) (uint32, uint32) {
			switch {
			case x == at+1:
				r0 = r0.Roll(data[x-1], data[x-1+bs], bs)
				r1 = r1.Roll(data[x-1+bs], data[x-1+2*bs], bs)
			case x != at:
				r0 = rollsum.Block(data[x : x+bs])
				r1 = rollsum.Block(data[x+bs : x+2*bs])
			}
			at = x
			return r0.Packed() & ix.mask, r1.Packed() & ix.mask
		}
		for x := 0; x < limit; {
			matched := 0
			cur = int64(si)<<48 | int64(x)
			if nextMatch >= 0 && seq > 1 {
				id := nextMatch
				nextMatch = -1
				if w0, _ := weak(x); id < n && w0 == ix.rsum[id] && strongAt(data, x, id) {
					if nextKnown > id+1 {
						write(id, id)
						nextMatch = id + 1
						matched = 1
					} else if nextKnown > id {
						write(id, nextKnown-1)
						matched = 1
					}
				}
			}
			for matched == 0 && x < limit {
				cur = int64(si)<<48 | int64(x)
				w0, w1 := weak(x)
				k := uint64(w0)
				if seq == 2 {
					k = k<<32 | uint64(w1)
				}
				got := 0
				for _, id := range chain[k] {
					if found[id] {
						continue // removed from the hash once written
					}
					if !strongAt(data, x, id) || seq == 2 && !strongAt(data, x+bs, id+1) {
						continue
					}
					nk := nextKnownFrom(id)
					if nk > id+seq {
						write(id, id+seq-1)
						nextMatch, nextKnown = id+seq, nk
						got += seq
					} else {
						write(id, nk-1)
						got += nk - id
					}
				}
				if got > 0 {
					matched = seq
				} else {
					x++
				}
			}
			if matched > 0 {
				x += matched * bs
			}
		}
	}
	return found, where
}
