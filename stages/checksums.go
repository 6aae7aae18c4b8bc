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
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/strong"
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
	Algorithm strong.Algorithm
	// SHA1 and SHA256 select the whole-file hashes to compute. Legacy
	// control files carry SHA-1, spec 0.8 files SHA-256.
	SHA1, SHA256 bool
	// Hasher computes strong hashes; nil creates one for the call.
	Hasher *simd.Hasher
	// Workers bounds the hashing goroutines; 0 means pipeline.DefaultWorkers.
	Workers int
	// Progress, if set, is called with the number of bytes read so far.
	Progress func(read int64)
	// Stats, if set, receives the per-stage statistics of BlockChecksums'
	// pipeline when it has run.
	Stats func([]pipeline.StageStats)
}

// chunkBlocks is how many blocks one unit of work carries: enough to fill
// the SIMD lanes several times and to amortise channel hand-offs.
const chunkBlocks = 64

// chunk is a piece of the input: whole blocks, the last one zero-padded.
type chunk struct {
	first int64        // index of the first block
	data  []byte       // len is a multiple of the block size
	n     int          // bytes of real input in data
	buf   *[]byte      // the pooled buffer behind data
	users atomic.Int32 // consumers done with data
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
			alg = strong.MD5
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
	err = p.Run(ctx)
	if opts.Stats != nil {
		opts.Stats(p.Stats())
	}
	if err != nil {
		return nil, err
	}
	return result(), nil
}

// ChecksumStage adds block_checksums to a pipeline: read, then a tee to the
// whole-file hash (serial, on its own) and to the block sums (parallel,
// order kept), which a sink collects. After the pipeline
// has run without error, the returned function gives the control file (the
// same one on every call).
// opts.Hasher is required here: the caller owns its lifetime.
func ChecksumStage(p *pipeline.Pipeline, r io.Reader, opts ChecksumOptions) (func() *control.File, error) {
	alg := opts.Algorithm
	if alg == 0 {
		alg = strong.MD5
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
	if err := control.CheckBlocksize(int64(bs)); err != nil {
		return nil, fmt.Errorf("block checksums: %w", err)
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
	if opts.Length > 0 && int64(chunkSize) > opts.Length {
		// A small input needs one chunk of its own size and a block more,
		// so that the first read already meets the end (callers that make
		// many control files allocate less).
		chunkSize = int((opts.Length+int64(bs)-1)/int64(bs)*int64(bs)) + bs
	}
	if chunkSize < bs {
		chunkSize = bs
	}

	var length int64
	var rsums []uint32
	var strong []byte
	if opts.Length > 0 && opts.Length/int64(bs) < 1<<28 {
		// Size the records once when the length is known (it is only a
		// hint: the slices still grow if more data comes).
		n := (opts.Length + int64(bs) - 1) / int64(bs)
		rsums = make([]uint32, 0, n)
		strong = make([]byte, 0, n*int64(full))
	}

	// Chunk buffers go round: read takes one, collect gives it back once
	// the whole-file hash has seen it.
	bufs := sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
	read := pipeline.Source(p, "read", func(ctx context.Context, emit func(*chunk) error) error {
		var first int64
		for {
			bp := bufs.Get().(*[]byte)
			buf := *bp
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				// Zero the padding of a short last block.
				used := (n + bs - 1) / bs * bs
				clear(buf[n:used])
				c := &chunk{first: first, data: buf[:used], n: n, buf: bp}
				first += int64(used / bs)
				length += int64(n)
				if opts.Progress != nil {
					opts.Progress(length)
				}
				if err := emit(c); err != nil {
					return err
				}
			} else {
				bufs.Put(bp)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read input: %w", err)
			}
		}
	})
	// The whole-file hash is serial: it gets its own copy of the stream, so
	// one core can hash while the block sums run beside it.
	toSums, toHash := read, (*pipeline.Stream[*chunk])(nil)
	users := int32(1)
	if sha1h != nil || sha256h != nil {
		toSums, toHash = pipeline.Tee(p, "tee", read)
		users = 2
	}
	release := func(c *chunk) {
		if c.users.Add(1) == users {
			bufs.Put(c.buf)
		}
	}
	summed := pipeline.Map(p, "block-sums", toSums, opts.Workers, func(ctx context.Context, c *chunk) (*chunk, error) {
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
		release(c)
		return c, nil
	})
	if toHash != nil {
		pipeline.Sink(p, "file-hash", toHash, func(ctx context.Context, c *chunk) error {
			if sha1h != nil {
				sha1h.Write(c.data[:c.n])
			}
			if sha256h != nil {
				sha256h.Write(c.data[:c.n])
			}
			release(c)
			return nil
		})
	}
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
