package control

import (
	"time"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

// HashLengths is the value of the Hash-Lengths header.
type HashLengths struct {
	// SeqMatches is how many consecutive blocks must match before a match
	// is trusted: 1 or 2.
	SeqMatches int
	// RsumBytes is how many bytes of the 4-byte rolling checksum each
	// record keeps: 1 to 4.
	RsumBytes int
	// StrongBytes is how many leading bytes of the strong hash each record
	// keeps: 3 to 16 (up to 32 for SHA-224 files).
	StrongBytes int
}

// Header holds the header fields of a control file.
type Header struct {
	// Version is the value of the "zsync:" line, e.g. "0.6.2".
	Version string
	// MinVersion is the Min-Version header, empty when absent.
	MinVersion string
	// Filename is the suggested name of the target; it never contains '/'.
	Filename string
	// MTime is the target's modification time; zero when absent.
	MTime time.Time
	// Blocksize is the block size in bytes, a power of two.
	Blocksize int
	// Length is the target's length in bytes.
	Length int64
	// HashLengths gives the record layout.
	HashLengths HashLengths
	// URLs lists where the target can be fetched, possibly relative to the
	// control file's own URL.
	URLs []string
	// StrongAlgorithm is the strong block hash; MD4 when the file has no
	// Strong-Hash-Algorithm header.
	StrongAlgorithm strong.Algorithm
	// SHA1 is the whole-file SHA-1 (legacy "SHA-1:" header), nil if absent.
	SHA1 []byte
	// SHA256 is the whole-file SHA-256 (spec 0.8 "File-Hash: SHA-256:"),
	// nil if absent.
	SHA256 []byte
	// SHA256Chain, if set, lets a client check SHA256 in parallel pieces
	// (the "Hash-Chain" header); nil if absent.
	SHA256Chain *HashChain
	// Safe lists header names that older clients may ignore.
	Safe []string
	// Extra holds headers this package does not interpret, in file order.
	// They are written back unchanged.
	Extra []Field
}

// Field is one header line that has no dedicated Header field.
type Field struct {
	Name, Value string
}

// Blocks returns the number of blocks of the target: ceil(Length/Blocksize).
func (h *Header) Blocks() int64 {
	if h.Blocksize <= 0 || h.Length <= 0 {
		return 0
	}
	// Written without Length+Blocksize-1 so that it cannot overflow.
	n := h.Length / int64(h.Blocksize)
	if h.Length%int64(h.Blocksize) != 0 {
		n++
	}
	return n
}

// Checksums holds the per-block records of a control file in a compact form:
// one uint32 rolling checksum and StrongBytes of strong hash per block.
type Checksums struct {
	// RsumBytes and StrongBytes mirror the header's HashLengths.
	RsumBytes, StrongBytes int
	// Rsum[i] is block i's rolling checksum, a<<16 | b, already reduced with
	// RsumMask(RsumBytes): the part a record stores.
	Rsum []uint32
	// Strong holds len(Rsum) strong hashes of StrongBytes each, back to back.
	Strong []byte
}

// Len returns the number of blocks.
func (c *Checksums) Len() int { return len(c.Rsum) }

// StrongOf returns the stored strong hash of block i.
func (c *Checksums) StrongOf(i int) []byte {
	return c.Strong[i*c.StrongBytes : (i+1)*c.StrongBytes]
}

// RsumMask returns the mask that keeps the part of a 32-bit rolling checksum
// (a<<16 | b) that a record of n rolling-checksum bytes stores: the trailing
// n bytes of its big-endian form.
func RsumMask(n int) uint32 {
	if n >= 4 {
		return 0xffffffff
	}
	if n <= 0 {
		return 0
	}
	return 1<<(8*uint(n)) - 1
}

// File is a whole control file: its header and its block records.
type File struct {
	Header
	Checksums Checksums
}
