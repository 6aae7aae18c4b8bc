package control

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

// Block sums: the block records of a small file without the text header of
// a control file. A control file's header (name, time, URL, hashes) is
// about 300 bytes, more than the records of a file of a few kilobytes at
// small blocks; where the length and the whole-file hash are known from
// elsewhere (a tree index entry), a sums record carries the rest:
//
//	byte 0   SumsVersion (1)
//	byte 1   log2 of the block size
//	byte 2   seq_matches (1 or 2)
//	byte 3   rsum bytes (1 to 4)
//	byte 4   strong bytes (3 to 16)
//	byte 5   strong hash algorithm: 5 for MD5 (the only one)
//	then     ceil(length/blocksize) block records, as in a control file
//
// Nothing may follow the last record.

// SumsVersion is the first byte of a sums record.
const SumsVersion = 1

// sumsHeader is the length of a sums record's header.
const sumsHeader = 6

// sumsMD5 is the algorithm byte of MD5 block hashes.
const sumsMD5 = 5

// ErrSums is wrapped by the errors of DecodeSums.
var ErrSums = errors.New("malformed block sums")

// EncodeSums returns f's sums record: f's block size, hash lengths and
// records (MD5 block hashes only). The length and whole-file hash are not
// in it.
func EncodeSums(f *File) ([]byte, error) {
	h := &f.Header
	if h.StrongAlgorithm != strong.MD5 {
		return nil, fmt.Errorf("control: block sums need MD5 block hashes, not %v", h.StrongAlgorithm)
	}
	if err := CheckMakeBlocksize(int64(h.Blocksize)); err != nil {
		return nil, fmt.Errorf("control: block sums: %w", err)
	}
	if err := checkHashLengths(h.HashLengths, h.StrongAlgorithm); err != nil {
		return nil, fmt.Errorf("control: block sums: %w", err)
	}
	if err := checkChecksums(h, &f.Checksums); err != nil {
		return nil, err
	}
	c := &f.Checksums
	rb, sb := c.RsumBytes, c.StrongBytes
	b := make([]byte, sumsHeader, sumsHeader+len(c.Rsum)*(rb+sb))
	b[0] = SumsVersion
	b[1] = byte(bits.TrailingZeros(uint(h.Blocksize)))
	b[2] = byte(h.HashLengths.SeqMatches)
	b[3], b[4] = byte(rb), byte(sb)
	b[5] = sumsMD5
	for i, v := range c.Rsum {
		for k := 0; k < rb; k++ {
			b = append(b, byte(v>>(8*uint(rb-1-k))))
		}
		b = append(b, c.Strong[i*sb:(i+1)*sb]...)
	}
	return b, nil
}

// DecodeSums reads the sums record b of a file of length bytes whose
// SHA-256 is sha256, and returns it as a control file: spec 0.8, MD5
// block hashes, that length and hash, and no name or URL. It refuses (an
// error wrapping ErrSums) a record of another version, a block size that
// is not a power of two from MinMakeBlocksize to MaxBlocksize, hash
// lengths out of range, and a record of any other length than those
// fields and length imply.
func DecodeSums(b []byte, length int64, sha256 []byte) (*File, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("control: %w: %s", ErrSums, fmt.Sprintf(format, args...))
	}
	if len(b) < sumsHeader {
		return nil, bad("%d bytes, shorter than its header", len(b))
	}
	if b[0] != SumsVersion {
		return nil, bad("version %d, not %d", b[0], SumsVersion)
	}
	if b[5] != sumsMD5 {
		return nil, bad("unknown strong hash algorithm %d", b[5])
	}
	if b[1] >= 31 || CheckMakeBlocksize(1<<b[1]) != nil {
		return nil, bad("block size 2^%d out of range", b[1])
	}
	if length < 0 || length > math.MaxInt64/2 || len(sha256) != 32 {
		return nil, bad("length %d or a %d-byte SHA-256", length, len(sha256))
	}
	h := Header{
		Version:         "0.7.2",
		Blocksize:       1 << b[1],
		Length:          length,
		HashLengths:     HashLengths{SeqMatches: int(b[2]), RsumBytes: int(b[3]), StrongBytes: int(b[4])},
		StrongAlgorithm: strong.MD5,
		SHA256:          sha256,
	}
	if err := checkHashLengths(h.HashLengths, h.StrongAlgorithm); err != nil {
		return nil, bad("%v", err)
	}
	rb, sb := h.HashLengths.RsumBytes, h.HashLengths.StrongBytes
	n := h.Blocks()
	// More blocks than bytes cannot fit: refused before n*(rb+sb) is
	// worked out.
	if want := int64(sumsHeader) + n*int64(rb+sb); n > int64(len(b)) || int64(len(b)) != want {
		return nil, bad("%d bytes where %d blocks of %d-byte records take %d", len(b), n, rb+sb, want)
	}
	c := Checksums{RsumBytes: rb, StrongBytes: sb, Rsum: make([]uint32, n), Strong: make([]byte, 0, n*int64(sb))}
	for i, rec := 0, b[sumsHeader:]; len(rec) > 0; i, rec = i+1, rec[rb+sb:] {
		var v uint32
		for _, x := range rec[:rb] {
			v = v<<8 | uint32(x)
		}
		c.Rsum[i] = v
		c.Strong = append(c.Strong, rec[rb:rb+sb]...)
	}
	return &File{Header: h, Checksums: c}, nil
}

// SumsBlocksize returns the block size of the sums of a file of length
// bytes: the power of two nearest the square root of 6×length (a missing
// block costs its length, and every block about 6 bytes of sums, so that
// one changed spot in the file costs least), from 256 to 2048 bytes.
func SumsBlocksize(length int64) int {
	bs := 256
	for bs < 2048 && float64(bs)*math.Sqrt2 < math.Sqrt(6*float64(max(length, 0))) {
		bs *= 2
	}
	return bs
}

// SumsHashLengths returns the hash lengths of block sums of the given
// block size: those zsyncmake chooses for a file of SumsMaxLength bytes,
// the largest that has sums, whatever the file's own length. So the sums
// of one block size share one record layout, and a client scans the
// blocks of many files with one index (records of one layout are scanned
// together) instead of one per length.
func SumsHashLengths(blocksize int) HashLengths { return DefaultHashLengths(SumsMaxLength, blocksize) }

// SumsMaxLength is the largest file the publisher writes block sums for:
// the largest file it packs.
const SumsMaxLength = 1 << 20
