package control

import (
	"fmt"
	"math"
)

// The block sizes of control files. A control file may have any power of
// two from MinBlocksize to MaxBlocksize; zsyncpipe makes them with blocks of
// at least MinMakeBlocksize, as smaller blocks cost more in block records
// than they can save.
const (
	MinBlocksize     = minBlocksize
	MaxBlocksize     = maxBlocksize
	MinMakeBlocksize = 16
)

// CheckBlocksize reports, as an error saying why, whether n is not a block
// size a control file may have: a power of two from MinBlocksize to
// MaxBlocksize.
func CheckBlocksize(n int64) error { return checkRange(n, MinBlocksize) }

// CheckMakeBlocksize is CheckBlocksize for making control files: the
// smallest block size is MinMakeBlocksize.
func CheckMakeBlocksize(n int64) error { return checkRange(n, MinMakeBlocksize) }

func checkRange(n, lo int64) error {
	if checkBlocksizeFrom(n, lo) != nil {
		return fmt.Errorf("block size %d is not a power of two from %d to %d", n, lo, MaxBlocksize)
	}
	return nil
}

// DefaultBlocksize returns the block size zsyncmake 0.6.2 chooses for a file
// of the given length: 2048 below 100000000 bytes, 4096 from there on.
func DefaultBlocksize(length int64) int {
	if length < 100000000 {
		return 2048
	}
	return 4096
}

// DefaultHashLengths returns the Hash-Lengths zsyncmake 0.6.2 chooses for a
// file of the given length and block size. It evaluates zsyncmake's
// floating-point formula in the same order, including how a C compiler on
// x86-64 converts an infinite double to int, so that the result matches
// zsyncmake's output exactly (for length 0 that is 1,2,3). A block size
// below 1 is replaced by DefaultBlocksize(length) and a negative length by 0.
func DefaultHashLengths(length int64, blocksize int) HashLengths {
	if length < 0 {
		length = 0
	}
	if blocksize <= 0 {
		blocksize = DefaultBlocksize(length)
	}
	bs := int64(blocksize)
	seq := 1
	if length > bs {
		seq = 2
	}
	ln2 := math.Log(2)
	lnL := math.Log(float64(length))
	lnBS := math.Log(float64(blocksize))
	lnBlocks := math.Log(float64(uint64(length/bs) + 1)) // integer division, unsigned, as in C

	rsum := cInt(math.Ceil(((lnL+lnBS)/ln2 - 8.6) / float64(seq) / 8))
	if rsum > 4 {
		rsum = 4
	}
	if rsum < 2 {
		rsum = 2
	}
	strong := cInt(math.Ceil((20 + (lnL+lnBlocks)/ln2) / float64(seq) / 8))
	if strong2 := cInt((7.9 + (20 + lnBlocks/ln2)) / 8); strong < strong2 {
		strong = strong2
	}
	return HashLengths{SeqMatches: seq, RsumBytes: rsum, StrongBytes: strong}
}

// cInt converts f to a 32-bit int the way C's (int) conversion does on
// x86-64 (cvttsd2si): truncation toward zero, and INT_MIN for NaN and
// values out of range, such as the -Inf that log(0) produces.
func cInt(f float64) int {
	if math.IsNaN(f) || f <= math.MinInt32-1 || f >= math.MaxInt32+1 {
		return math.MinInt32
	}
	return int(f)
}
