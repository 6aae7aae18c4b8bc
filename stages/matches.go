package stages

import (
	"fmt"
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/internal/prefault"
)

// Matches records, for each block of the target, where local data holding it
// was found: a seed and an offset in it. It is safe for concurrent use; the
// first location recorded for a block wins.
type Matches struct {
	loc   []atomic.Uint64 // 0: unknown; else seed<<48 | offset+1
	found atomic.Int64
}

const (
	offsetBits = 48
	offsetMask = 1<<offsetBits - 1
	// MaxSeeds is the number of seeds a Matches can tell apart.
	MaxSeeds = 1 << (64 - offsetBits)
)

// NewMatches returns an empty record for a target of the given number of
// blocks.
func NewMatches(blocks int64) *Matches {
	m := &Matches{loc: make([]atomic.Uint64, blocks)}
	prefault.Slice(m.loc) // tested (Has) before set: see prefault
	return m
}

// Blocks returns the number of target blocks.
func (m *Matches) Blocks() int64 { return int64(len(m.loc)) }

// Found returns how many blocks have a location.
func (m *Matches) Found() int64 { return m.found.Load() }

// Complete reports whether every block has a location.
func (m *Matches) Complete() bool { return m.found.Load() == int64(len(m.loc)) }

// Has reports whether block i has a location.
func (m *Matches) Has(i int64) bool { return m.loc[i].Load() != 0 }

// Lookup returns where block i was found.
func (m *Matches) Lookup(i int64) (seed int, offset int64, ok bool) {
	v := m.loc[i].Load()
	if v == 0 {
		return 0, 0, false
	}
	return int(v >> offsetBits), int64(v&offsetMask) - 1, true
}

// Set records that block i is at offset in seed, unless it already has a
// location. It reports whether this call recorded it.
func (m *Matches) Set(i int64, seed int, offset int64) bool {
	if seed < 0 || seed >= MaxSeeds || offset < 0 || offset >= offsetMask {
		panic(fmt.Sprintf("stages: match location out of range: seed %d offset %d", seed, offset))
	}
	if !m.loc[i].CompareAndSwap(0, uint64(seed)<<offsetBits|uint64(offset+1)) {
		return false
	}
	m.found.Add(1)
	return true
}
