package stages

import "io"

// Block is a run of one or more consecutive blocks of the target: Data holds
// the bytes of target blocks Index, Index+1, … back to back. Its length is a
// multiple of the block size, except that a run ending with the target's
// last block may stop at the target's end.
type Block struct {
	Index int64
	Data  []byte
}

// Batch is a group of blocks moving between stages.
type Batch []Block

// Size returns the number of data bytes in the batch (pipeline.Sizer).
func (b Batch) Size() int64 {
	var n int64
	for _, blk := range b {
		n += int64(len(blk.Data))
	}
	return n
}

// Seed is a local file that may hold parts of the target.
type Seed struct {
	// Name identifies the seed in messages.
	Name string
	// R reads the seed's bytes.
	R io.ReaderAt
	// Size is the seed's length in bytes.
	Size int64
}
