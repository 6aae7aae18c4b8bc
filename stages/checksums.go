package stages

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/simd"
)

// ChecksumOptions configures BlockChecksums.
type ChecksumOptions struct {
	// Blocksize is the block size, a power of two; 0 chooses zsyncmake's
	// default for Length (or 2048 when Length is unknown).
	Blocksize int
	// Length, if known (> 0), is the input's length; it lets Blocksize be
	// chosen up front. The result's Length is what was actually read.
	Length int64
	// HashLengths, if non-zero, fixes the record layout; otherwise it is
	// chosen from the length read, as zsyncmake does.
	HashLengths control.HashLengths
	// Algorithm is the strong block hash; 0 means MD5.
	Algorithm simd.Algorithm
	// SHA1 and SHA256 select the whole-file hashes to compute. Legacy
	// control files carry SHA-1, spec 0.8 files SHA-256.
	SHA1, SHA256 bool
	// Hasher computes strong hashes; nil creates one for the call.
	Hasher *simd.Hasher
	// Workers bounds the hashing goroutines; 0 means pipeline.DefaultWorkers.
	Workers int
	// Progress, if set, is called with the number of bytes read so far.
	Progress func(read int64)
}

// chunkBlocks is how many blocks one unit of work carries: enough to fill
// the SIMD lanes several times and to amortise channel hand-offs.
const chunkBlocks = 64

// chunk is a piece of the input: whole blocks, the last one zero-padded.
type chunk struct {
	first int64  // index of the first block
	data  []byte // len is a multiple of the block size
	n     int    // bytes of real input in data
	sums  []uint32
	hash  []byte
}

func (c *chunk) Size() int64 { return int64(c.n) }

// BlockChecksums reads the target from r and returns its control file: the
// header fields that follow from the data (Blocksize, Length, HashLengths,
// StrongAlgorithm, SHA1/SHA256) and one record per block. The last short
// block is zero-padded before it is summed, as zsync does.
func BlockChecksums(ctx context.Context, r io.Reader, opts ChecksumOptions) (*control.File, error) {
	if opts.Hasher == nil {
		alg := opts.Algorithm
		if alg == 0 {
			alg = simd.MD5
		}
		h, err := simd.NewHasher(alg, simd.Options{})
		if err != nil {
			return nil, fmt.Errorf("block checksums: %w", err)
		}
		defer h.Close()
		opts.Hasher = h
	}
	p := pipeline.New(pipeline.Config{Workers: opts.Workers})
	result, err := ChecksumStage(p, r, opts)
	if err != nil {
		return nil, err
	}
	if err := p.Run(ctx); err != nil {
		return nil, err
	}
	return result(), nil
}

// ChecksumStage adds block_checksums to a pipeline as three stages — read,
// whole-file hash, block sums — and a collecting sink. After the pipeline
// has run without error, the returned function gives the control file (the
// same one on every call).
// opts.Hasher is required here: the caller owns its lifetime.
func ChecksumStage(p *pipeline.Pipeline, r io.Reader, opts ChecksumOptions) (func() *control.File, error) {
	alg := opts.Algorithm
	if alg == 0 {
		alg = simd.MD5
	}
	if alg.Size() == 0 {
		return nil, fmt.Errorf("block checksums: unknown strong hash %v", alg)
	}
	bs := opts.Blocksize
	if bs == 0 {
		bs = 2048
		if opts.Length > 0 {
			bs = control.DefaultBlocksize(opts.Length)
		}
	}
	if bs <= 0 || bs&(bs-1) != 0 || bs > 1<<30 {
		return nil, fmt.Errorf("block checksums: block size %d is not a power of two", bs)
	}
	hasher := opts.Hasher
	if hasher == nil {
		return nil, errors.New("block checksums: no strong hasher")
	}
	if hasher.Algorithm() != alg {
		return nil, fmt.Errorf("block checksums: hasher computes %v, want %v", hasher.Algorithm(), alg)
	}
	full := alg.Size()
	if hl := opts.HashLengths; hl != (control.HashLengths{}) && (hl.StrongBytes < 1 || hl.StrongBytes > full || hl.RsumBytes < 1 || hl.RsumBytes > 4) {
		return nil, fmt.Errorf("block checksums: hash lengths %d,%d,%d do not fit %v", hl.SeqMatches, hl.RsumBytes, hl.StrongBytes, alg)
	}

	var sha1h, sha256h hash.Hash
	if opts.SHA1 {
		sha1h = sha1.New()
	}
	if opts.SHA256 {
		sha256h = sha256.New()
	}

	chunkSize := bs * chunkBlocks
	if chunkSize < 256<<10 {
		chunkSize = (256 << 10) / bs * bs
	}
	if chunkSize > 4<<20 {
		chunkSize = 4 << 20 / bs * bs // 0 above 4 MiB blocks: one block, below
	}
	if chunkSize < bs {
		chunkSize = bs
	}

	var length int64
	var rsums []uint32
	var strong []byte

	read := pipeline.Source(p, "read", func(ctx context.Context, emit func(*chunk) error) error {
		var first int64
		for {
			buf := make([]byte, chunkSize)
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				// Zero the padding of a short last block (fresh buffers are
				// zeroed already; keep the invariant explicit).
				used := (n + bs - 1) / bs * bs
				clear(buf[n:used])
				c := &chunk{first: first, data: buf[:used], n: n}
				first += int64(used / bs)
				length += int64(n)
				if opts.Progress != nil {
					opts.Progress(length)
				}
				if err := emit(c); err != nil {
					return err
				}
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read input: %w", err)
			}
		}
	})
	hashed := read
	if sha1h != nil || sha256h != nil {
		hashed = pipeline.Transform(p, "file-hash", read, func(ctx context.Context, c *chunk, emit func(*chunk) error) error {
			if sha1h != nil {
				sha1h.Write(c.data[:c.n])
			}
			if sha256h != nil {
				sha256h.Write(c.data[:c.n])
			}
			return emit(c)
		})
	}
	summed := pipeline.Map(p, "block-sums", hashed, opts.Workers, func(ctx context.Context, c *chunk) (*chunk, error) {
		nb := len(c.data) / bs
		c.sums = make([]uint32, nb)
		blocks := make([][]byte, nb)
		for i := range nb {
			blk := c.data[i*bs : (i+1)*bs]
			blocks[i] = blk
			c.sums[i] = rollsum.Block(blk).Packed()
		}
		c.hash = make([]byte, nb*full)
		hasher.SumBlocks(c.hash, full, blocks)
		c.data = nil
		return c, nil
	})
	pipeline.Sink(p, "collect", summed, func(ctx context.Context, c *chunk) error {
		rsums = append(rsums, c.sums...)
		strong = append(strong, c.hash...)
		return nil
	})

	// Once: the records are truncated in place, so a second pass would
	// read digests the first one overwrote.
	result := sync.OnceValue(func() *control.File {
		hl := opts.HashLengths
		if hl == (control.HashLengths{}) {
			hl = control.DefaultHashLengths(length, bs)
		}
		f := &control.File{Header: control.Header{
			Blocksize:       bs,
			Length:          length,
			HashLengths:     hl,
			StrongAlgorithm: alg,
		}}
		if sha1h != nil {
			f.SHA1 = sha1h.Sum(nil)
		}
		if sha256h != nil {
			f.SHA256 = sha256h.Sum(nil)
		}
		mask := control.RsumMask(hl.RsumBytes)
		for i := range rsums {
			rsums[i] &= mask
		}
		// Keep the leading StrongBytes of each digest, in place.
		sb := hl.StrongBytes
		for i := range rsums {
			copy(strong[i*sb:(i+1)*sb], strong[i*full:i*full+sb])
		}
		f.Checksums = control.Checksums{
			RsumBytes:   hl.RsumBytes,
			StrongBytes: sb,
			Rsum:        rsums,
			Strong:      strong[: len(rsums)*sb : len(rsums)*sb],
		}
		return f
	})
	return result, nil
}
