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
	// control files carry SHA-1, spec 0.8 files SHA-256. With SHA256 and a
	// known Length, the SHA-256 hash chain (control.HashChain) is recorded
	// too, at no extra hashing cost, when control.ChainSpan says the file
	// is large enough.
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
	sums  []uint32     // the chunk's rolling sums
	hash  []byte       // its strong digests, keep bytes each (full when extra)
	extra bool         // sums and hash lie outside the records sized up front
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
	// Streams of 2 chunks (not the default 4): fewer buffers in flight
	// (1.3 MB less peak RSS for make) and no measurable loss of speed.
	p := pipeline.New(pipeline.Config{Workers: opts.Workers, Buffer: 2})
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
	c, err := newChecksummer(r, opts)
	if err != nil {
		return nil, err
	}
	read := pipeline.Source(p, "read", c.read)
	// The whole-file hash is serial: it gets its own copy of the stream, so
	// one core can hash while the block sums run beside it.
	toSums, toHash := read, (*pipeline.Stream[*chunk])(nil)
	c.users = 1
	if c.sha1 != nil || c.sha256 != nil {
		toSums, toHash = pipeline.Tee(p, "tee", read)
		c.users = 2
	}
	summed := pipeline.Map(p, "block-sums", toSums, opts.Workers, c.sum)
	if toHash != nil {
		pipeline.Sink(p, "file-hash", toHash, c.hashFile)
	}
	pipeline.Sink(p, "collect", summed, c.collect)
	// Once: the records are truncated in place, so a second pass would
	// read digests the first one overwrote.
	return sync.OnceValue(c.result), nil
}

// checksummer is the state of one ChecksumStage.
type checksummer struct {
	r         io.Reader
	opts      ChecksumOptions
	alg       strong.Algorithm
	bs, full  int
	keep      int // bytes kept of each digest in preStrongs
	chunkSize int
	hasher    *simd.Hasher
	sha1      hash.Hash
	sha256    hash.Hash
	chain     *control.HashChain // the SHA-256 states recorded so far, or nil
	sha256n   int64              // bytes fed to sha256
	bufs      sync.Pool          // chunk buffers: read takes one, the last user gives it back
	users     int32              // consumers of each chunk
	length    int64              // owned by read
	// preRsums and preStrongs are the records sized up front from
	// opts.Length; each block-sums worker writes its chunk's records into
	// them in place. Set once before the pipeline runs.
	preRsums   []uint32
	preStrongs []byte
	blocks     int64    // blocks collected; owned by collect
	rsums      []uint32 // records of blocks past the sized ones, owned by collect
	strongs    []byte   // (the input grew after its length was taken)
}

// newChecksummer checks the options and sets the sizes.
func newChecksummer(r io.Reader, opts ChecksumOptions) (*checksummer, error) {
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
	c := &checksummer{r: r, opts: opts, alg: alg, bs: bs, full: full, hasher: hasher}
	if opts.SHA1 {
		c.sha1 = sha1.New()
	}
	if opts.SHA256 {
		c.sha256 = sha256.New()
		if opts.Length > 0 {
			if span, ok := control.ChainSpan(opts.Length, bs); ok {
				c.chain = &control.HashChain{Span: span}
			}
		}
	}
	c.chunkSize = bs * chunkBlocks
	if c.chunkSize < 256<<10 {
		c.chunkSize = (256 << 10) / bs * bs
	}
	if c.chunkSize > 4<<20 {
		c.chunkSize = 4 << 20 / bs * bs // 0 above 4 MiB blocks: one block, below
	}
	if opts.Length > 0 && int64(c.chunkSize) > opts.Length {
		// A small input needs one chunk of its own size and a block more,
		// so that the first read already meets the end (callers that make
		// many control files allocate less).
		c.chunkSize = int((opts.Length+int64(bs)-1)/int64(bs)*int64(bs)) + bs
	}
	c.chunkSize = max(c.chunkSize, bs)
	if opts.Length > 0 && opts.Length/int64(bs) < 1<<28 {
		// Size the records once when the length is known (it is only a
		// hint: the slices still grow if more data comes).
		n := (opts.Length + int64(bs) - 1) / int64(bs)
		// Only the leading bytes of each digest that the control file
		// will hold (plus one, should the input grow a little while it
		// is read; read fails if it grows more).
		c.keep = full
		if hl := opts.HashLengths; hl != (control.HashLengths{}) {
			c.keep = hl.StrongBytes
		} else {
			c.keep = min(full, control.DefaultHashLengths(opts.Length, bs).StrongBytes+1)
		}
		c.preRsums = make([]uint32, n)
		c.preStrongs = make([]byte, n*int64(c.keep))
	}
	c.bufs.New = func() any { b := make([]byte, c.chunkSize); return &b }
	return c, nil
}

// read cuts the input into chunks of whole blocks, the last one
// zero-padded.
func (c *checksummer) read(ctx context.Context, emit func(*chunk) error) error {
	bs := c.bs
	var first int64
	for {
		bp := c.bufs.Get().(*[]byte)
		buf := *bp
		n, err := io.ReadFull(c.r, buf)
		if n > 0 {
			// Zero the padding of a short last block.
			used := (n + bs - 1) / bs * bs
			clear(buf[n:used])
			ch := &chunk{first: first, data: buf[:used], n: n, buf: bp}
			first += int64(used / bs)
			c.length += int64(n)
			if c.opts.Progress != nil {
				c.opts.Progress(c.length)
			}
			if err := emit(ch); err != nil {
				return err
			}
		} else {
			c.bufs.Put(bp)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return c.checkKept()
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
	}
}

// ErrGrew reports an input that grew so much while it was read, beyond
// the length given in ChecksumOptions.Length, that its records need
// longer strong hashes than were kept.
var ErrGrew = errors.New("input grew while it was read")

// checkKept makes sure, once the length is known, that the digests kept in
// the records sized up front are long enough for it.
func (c *checksummer) checkKept() error {
	if len(c.preRsums) == 0 || c.opts.HashLengths != (control.HashLengths{}) {
		return nil
	}
	if sb := control.DefaultHashLengths(c.length, c.bs).StrongBytes; sb > c.keep {
		return fmt.Errorf("read input: %w: %d bytes instead of %d need %d-byte strong hashes, %d kept",
			ErrGrew, c.length, c.opts.Length, sb, c.keep)
	}
	return nil
}

// release records that a consumer is done with the chunk's data, and gives
// the buffer back after the last one.
func (c *checksummer) release(ch *chunk) {
	if ch.users.Add(1) == c.users {
		c.bufs.Put(ch.buf)
	}
}

// sum computes the rolling checksums and the strong hashes of a chunk's
// blocks, the strong hashes together so that the SIMD lanes are full.
func (c *checksummer) sum(ctx context.Context, ch *chunk) (*chunk, error) {
	bs := c.bs
	nb := len(ch.data) / bs
	if end := ch.first + int64(nb); end <= int64(len(c.preRsums)) {
		ch.sums = c.preRsums[ch.first:end]
		ch.hash = c.preStrongs[ch.first*int64(c.keep) : end*int64(c.keep)]
	} else {
		ch.sums, ch.hash, ch.extra = make([]uint32, nb), make([]byte, nb*c.full), true
	}
	blocks := make([][]byte, nb)
	for i := range nb {
		blk := ch.data[i*bs : (i+1)*bs]
		blocks[i] = blk
		ch.sums[i] = rollsum.Block(blk).Packed()
	}
	size := c.keep
	if ch.extra {
		size = c.full
	}
	c.hasher.SumBlocks(ch.hash, size, blocks)
	c.release(ch)
	return ch, nil
}

// hashFile feeds a chunk's real bytes to the whole-file hashes.
func (c *checksummer) hashFile(ctx context.Context, ch *chunk) error {
	if c.sha1 != nil {
		c.sha1.Write(ch.data[:ch.n])
	}
	if c.sha256 != nil {
		c.writeSHA256(ch.data[:ch.n])
	}
	c.release(ch)
	return nil
}

// writeSHA256 feeds p to the whole-file SHA-256, recording its state at
// every multiple of the hash chain's span.
func (c *checksummer) writeSHA256(p []byte) {
	for len(p) > 0 {
		n := int64(len(p))
		if c.chain != nil {
			n = min(n, c.chain.Span-c.sha256n%c.chain.Span)
		}
		c.sha256.Write(p[:n])
		c.sha256n += n
		p = p[n:]
		if c.chain != nil && c.sha256n%c.chain.Span == 0 && len(c.chain.States) <= control.MaxChainStates {
			st, err := SHA256State(c.sha256)
			if err != nil {
				c.chain = nil // no chain then; the File-Hash does not need it
				continue
			}
			c.chain.States = append(c.chain.States, st)
		}
	}
}

// collect counts a chunk's records, in order, and appends those that did
// not fit in the records sized up front.
func (c *checksummer) collect(ctx context.Context, ch *chunk) error {
	c.blocks += int64(len(ch.sums))
	if ch.extra {
		c.rsums = append(c.rsums, ch.sums...)
		c.strongs = append(c.strongs, ch.hash...)
	}
	return nil
}

// result makes the control file once the pipeline has run: the hash
// lengths from the final length, the records truncated in place.
func (c *checksummer) result() *control.File {
	hl := c.opts.HashLengths
	if hl == (control.HashLengths{}) {
		hl = control.DefaultHashLengths(c.length, c.bs)
	}
	f := &control.File{Header: control.Header{
		Blocksize:       c.bs,
		Length:          c.length,
		HashLengths:     hl,
		StrongAlgorithm: c.alg,
	}}
	if c.sha1 != nil {
		f.SHA1 = c.sha1.Sum(nil)
	}
	if c.sha256 != nil {
		f.SHA256 = c.sha256.Sum(nil)
		if ch := c.chain; ch != nil {
			// States after each span but the last one (the file may end
			// on a span boundary: its state there is the last).
			spans := ch.Spans(c.length)
			ch.States = ch.States[:min(int64(len(ch.States)), max(0, spans-1))]
			if spans >= 2 && int64(len(ch.States)) == spans-1 {
				f.SHA256Chain = ch
			}
		}
	}
	// The records in order: the sized ones actually used, then the rest.
	// (A chunk is written in place only if it fits whole, and chunks come
	// in order, so the in-place ones are all before the others.)
	pre := c.blocks - int64(len(c.rsums))
	rsums := c.preRsums[:pre]
	if len(c.rsums) > 0 {
		rsums = append(rsums, c.rsums...)
	}
	mask := control.RsumMask(hl.RsumBytes)
	for i := range rsums {
		rsums[i] &= mask
	}
	// Keep the leading StrongBytes of each digest, in place (read made
	// sure that StrongBytes <= keep), then those of the appended records.
	sb, keep := hl.StrongBytes, c.keep
	strongs := c.preStrongs[:pre*int64(keep)]
	for i := range int(pre) {
		copy(strongs[i*sb:(i+1)*sb], strongs[i*keep:i*keep+sb])
	}
	strongs = strongs[:int(pre)*sb]
	for i := range len(c.rsums) {
		strongs = append(strongs, c.strongs[i*c.full:i*c.full+sb]...)
	}
	n := len(rsums) * sb
	f.Checksums = control.Checksums{
		RsumBytes:   hl.RsumBytes,
		StrongBytes: sb,
		Rsum:        rsums[:len(rsums):len(rsums)],
		Strong:      strongs[:n:n],
	}
	return f
}
