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
	// Aligned has the seed looked at only at multiples of the block size
	// (and, from a match on, through the run of blocks that follows it,
	// as always), instead of at every byte offset: a target block is found
	// in it only where the seed holds it at such an offset — a copy of the
	// seed in the target, or a target made of it and other data in whole
	// blocks (the seed's data at block boundaries of both) — at about
	// 1/blocksize of the probes of a full scan and without rolling.
	// Data shifted by anything but whole blocks (an insertion before it,
	// the seed appended to a file of another length) is not found.
	Aligned bool
	// ChunkSums, for an Aligned seed, are the rolling checksums
	// (rollsum.Sum.Packed) of its consecutive rollsum.ChunkSize-byte
	// chunks, the last one padded with zeros (rollsum.Chunks), from a
	// caller that read the seed already, to hash it. When the block size
	// is a multiple of the chunk size, a segment of the seed in which no
	// block has the checksums of a block looked for is passed over without
	// being read. Sums that do not describe the seed (it changed since
	// they were made) can only make the scan miss what it would have found
	// in such a segment, or read one for nothing; sums of another number
	// of chunks than the seed's Size has are not used.
	ChunkSums []uint32
}
