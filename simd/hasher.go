package simd

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	md5simd "github.com/minio/md5-simd"

	"github.com/zsyncpipe/zsyncpipe/internal/cpus"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// EnvNoSIMD names the environment variable that disables the vector lanes:
// when it is set to a true value (1, t, true, y, yes, on; case-insensitive),
// NewHasher uses the portable fallback as if Options.Fallback were set. It is
// read by NewHasher, not at package initialisation.
const EnvNoSIMD = "ZSYNCPIPE_NOSIMD"

// maxServers bounds Options.Servers. Each server holds about 1.5 MiB of
// buffers and one goroutine.
const maxServers = 256

// Default tuning, chosen by the benchmarks in hasher_test.go on a 2-core
// AVX-512 machine (see doc.go).
const (
	// defaultMinLaneBlocks: batches (and trailing groups) with fewer blocks
	// than this are hashed with crypto/md5 in the caller's goroutine,
	// because md5-simd runs one or two busy lanes on a scalar path that is
	// slower than crypto/md5.
	defaultMinLaneBlocks = 4
	// defaultMinLaneMean: groups whose blocks average fewer bytes than
	// this are hashed with crypto/md5; at 1 KiB it wins even for 16 blocks.
	defaultMinLaneMean = 2 << 10
	// defaultSpawnAbove: groups whose largest block is longer than this are
	// hashed with one goroutine per md5-simd hasher. A single writer would
	// block on a hasher's 3-deep input queue long before the other 15
	// hashers had data, leaving the lanes mostly empty.
	defaultSpawnAbove = 64 << 10
)

// Options configures NewHasher. The zero value selects the vector lanes when
// the CPU has them and one md5-simd server per physical core.
type Options struct {
	// Fallback selects the portable path (crypto/md5) even when the CPU
	// has AVX2 or AVX-512.
	Fallback bool
	// Servers is the number of md5-simd servers (lane sets), each with its
	// own goroutine and 16 hashers. On a CPU with lanes, MD5 groups of
	// blocks of one length go through the 8-lane AVX2 path (x8), which
	// needs no server; the servers hash only groups of mixed lengths. Zero
	// means none: such groups are hashed with crypto/md5.
	Servers int
}

// Available reports whether the CPU can run md5-simd's vector lanes (AVX2;
// AVX512F+AVX512DQ select its 16-lane AVX-512 code). When it reports false,
// a Hasher hashes MD5 with crypto/md5.
func Available() bool {
	return cpuHasLanes()
}

// noSIMDFromEnv reports whether EnvNoSIMD is set to a true value.
func noSIMDFromEnv() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvNoSIMD))) {
	case "1", "t", "true", "y", "yes", "on":
		return true
	}
	return false
}

// laneSet is one md5-simd server with its long-lived hashers. A laneSet is
// used by one SumBlocks call at a time.
type laneSet struct {
	server  md5simd.Server
	hashers [lanesPerSet]md5simd.Hasher
	sums    [lanesPerSet][md5.Size]byte
}

func newLaneSet() *laneSet {
	ls := &laneSet{server: md5simd.NewServer()}
	for i := range ls.hashers {
		ls.hashers[i] = ls.server.NewHash()
	}
	return ls
}

// close releases the hashers, then the server. It must only be called when
// no hasher has work in flight: md5-simd v1.1.2 hangs hashers that write to
// a closed server.
func (ls *laneSet) close() {
	for _, h := range ls.hashers {
		h.Close()
	}
	ls.server.Close()
}

// strategy selects how a lane set is fed. Only tests and benchmarks set it.
type strategy uint8

const (
	// strategyAuto: one writer for small blocks, a goroutine per hasher
	// for large ones (see defaultSpawnAbove).
	strategyAuto strategy = iota
	// strategyWriter: the calling goroutine writes all hashers of a group,
	// then sums them.
	strategyWriter
	// strategySpawn: one goroutine per hasher of a group.
	strategySpawn
)

// pooledHash is a reusable hash.Hash with room for its digest, so that Sum
// does not allocate.
type pooledHash struct {
	h   hash.Hash
	buf [sha256.Size]byte
}

// Hasher computes strong block hashes in batches. MD5 goes through
// md5-simd's vector lanes when the CPU has them; MD4, SHA-224 and the MD5
// fallback are hashed serially in the calling goroutine. A Hasher is safe for
// concurrent use; it must be closed with Close to stop the md5-simd servers.
type Hasher struct {
	alg strong.Algorithm

	// x8 selects the 8-lane AVX2 MD4 or MD5 (x8) for groups of blocks of
	// one length.
	x8 bool

	// sets is the pool of md5-simd lane sets (nil without Options.Servers).
	// nsets is its capacity.
	sets  chan *laneSet
	nsets int

	// mu is held for reading by SumBlocks calls that use lanes and for
	// writing by Close, so that Close waits for them.
	mu     sync.RWMutex
	closed bool

	// pool holds reusable hash.Hash values for MD4.
	pool sync.Pool

	// Tuning; fixed after construction except in tests.
	minLaneBlocks int
	minLaneMean   int
	spawnAbove    int
	strat         strategy

	// laneCalls counts SumBlocks calls that used a lane set, for tests.
	laneCalls atomic.Int64
}

// NewHasher returns a Hasher for alg. MD5 uses md5-simd lanes unless
// opts.Fallback is set, the environment variable EnvNoSIMD is true, or the
// CPU lacks AVX2 (see Available); then it uses crypto/md5. It returns an error
// for an unknown algorithm or a negative or excessive opts.Servers.
func NewHasher(alg strong.Algorithm, opts Options) (*Hasher, error) {
	if alg.Size() == 0 {
		return nil, fmt.Errorf("simd: new hasher: unknown algorithm %v", alg)
	}
	if opts.Servers < 0 || opts.Servers > maxServers {
		return nil, fmt.Errorf("simd: new hasher: Servers = %d, want 0..%d", opts.Servers, maxServers)
	}
	h := &Hasher{
		alg:           alg,
		minLaneBlocks: defaultMinLaneBlocks,
		minLaneMean:   defaultMinLaneMean,
		spawnAbove:    defaultSpawnAbove,
	}
	h.pool.New = func() any { return &pooledHash{h: alg.New()} }
	if alg == strong.MD4 && !opts.Fallback && !noSIMDFromEnv() {
		h.x8 = cpuHasX8()
		return h, nil
	}
	if alg != strong.MD5 || opts.Fallback || noSIMDFromEnv() || !Available() {
		return h, nil
	}
	h.x8 = cpuHasX8()
	n := opts.Servers
	if n == 0 && !h.x8 {
		n = cpus.Cores()
	}
	if n == 0 {
		return h, nil
	}
	h.nsets = n
	h.sets = make(chan *laneSet, n)
	for range n {
		h.sets <- newLaneSet()
	}
	return h, nil
}

// Algorithm returns the algorithm the Hasher computes.
func (h *Hasher) Algorithm() strong.Algorithm { return h.alg }

// Lanes reports whether MD4 or MD5 goes through vector lanes (x8 or
// md5-simd's). It is false for SHA-224, for the fallback, without AVX2,
// and after Close.
func (h *Hasher) Lanes() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return (h.x8 || h.sets != nil) && !h.closed
}

// SumBlocks writes, for each i, the first size bytes of the digest of
// blocks[i] to out[i*size:(i+1)*size]. Blocks may have different lengths,
// including zero. SumBlocks is safe for concurrent use by many goroutines;
// with lanes, each call occupies one md5-simd server for its duration (a call
// waits when all servers are busy), so batches of at least 16 blocks, and one
// calling goroutine per server, keep the lanes full.
//
// out must hold at least len(blocks)*size bytes; bytes after that are left
// alone. SumBlocks panics if out is shorter or if size is not in
// 1..Algorithm().Size(): these are programming errors, not bad data.
func (h *Hasher) SumBlocks(out []byte, size int, blocks [][]byte) {
	if size <= 0 || size > h.alg.Size() {
		panic(fmt.Sprintf("simd: SumBlocks: size %d out of range 1..%d for %v", size, h.alg.Size(), h.alg))
	}
	if len(out) < len(blocks)*size {
		panic(fmt.Sprintf("simd: SumBlocks: out holds %d bytes, want %d (%d blocks × %d)", len(out), len(blocks)*size, len(blocks), size))
	}
	if (h.sets == nil && !h.x8) || len(blocks) < h.minLaneBlocks {
		h.sumSerial(out, size, blocks)
		return
	}
	if h.x8 {
		h.sumX8(out, size, blocks)
		return
	}
	h.sumLanes(out, size, blocks)
}

// sumX8 hashes blocks 8 at a time on the AVX2 lanes (x8), in the calling
// goroutine. A group x8 cannot take (blocks of mixed lengths) goes to the
// md5-simd lane sets if there are any, else to crypto/md5 (x/crypto/md4);
// so does a trailing group of fewer than minLaneBlocks blocks, since x8
// costs as much for one live lane as for eight.
func (h *Hasher) sumX8(out []byte, size int, blocks [][]byte) {
	var sums [8][md5.Size]byte
	used := false
	for len(blocks) > 0 {
		n := min(len(blocks), 8)
		group, gout := blocks[:n], out[:n*size]
		switch {
		case n >= h.minLaneBlocks && x8(h.alg == strong.MD4, &sums, group):
			used = true
			for i := range n {
				copy(gout[i*size:(i+1)*size], sums[i][:size])
			}
		case h.sets != nil:
			h.sumLanes(gout, size, group)
		default:
			h.sumSerial(gout, size, group)
		}
		out, blocks = out[n*size:], blocks[n:]
	}
	if used {
		h.laneCalls.Add(1)
	}
}

// sumLanes hashes blocks on an md5-simd lane set, 16 at a time.
func (h *Hasher) sumLanes(out []byte, size int, blocks [][]byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var ls *laneSet
	for len(blocks) > 0 {
		n := min(len(blocks), lanesPerSet)
		group, gout := blocks[:n], out[:n*size]
		switch {
		case h.closed || !h.laneWorthy(group):
			h.sumSerial(gout, size, group)
		default:
			if ls == nil {
				ls = <-h.sets
				h.laneCalls.Add(1)
				defer func() { h.sets <- ls }()
			}
			h.sumGroup(ls, gout, size, group)
		}
		out, blocks = out[n*size:], blocks[n:]
	}
}

// laneWorthy reports whether a group of at most 16 blocks is hashed faster
// on the lanes than by crypto/md5 in the calling goroutine. md5-simd costs
// about a microsecond of channel traffic per block and runs fewer than three
// busy lanes on its scalar code, so small groups and short blocks lose.
func (h *Hasher) laneWorthy(group [][]byte) bool {
	if len(group) < h.minLaneBlocks {
		return false
	}
	total := 0
	for _, b := range group {
		total += len(b)
	}
	return total >= len(group)*h.minLaneMean
}

// sumGroup hashes up to 16 blocks on the lanes of ls.
func (h *Hasher) sumGroup(ls *laneSet, out []byte, size int, blocks [][]byte) {
	spawn := h.strat == strategySpawn
	if h.strat == strategyAuto {
		for _, b := range blocks {
			if len(b) > h.spawnAbove {
				spawn = true
				break
			}
		}
	}
	if spawn {
		var wg sync.WaitGroup
		for i, b := range blocks {
			wg.Go(func() {
				hs := ls.hashers[i]
				hs.Reset()
				hs.Write(b)
				hs.Sum(ls.sums[i][:0])
			})
		}
		wg.Wait()
	} else {
		// Write every hasher first so that the server sees up to 16
		// hashers with data at once, then collect the sums.
		for i, b := range blocks {
			hs := ls.hashers[i]
			hs.Reset()
			hs.Write(b)
		}
		for i := range blocks {
			ls.hashers[i].Sum(ls.sums[i][:0])
		}
	}
	for i := range blocks {
		copy(out[i*size:(i+1)*size], ls.sums[i][:size])
	}
}

// sumSerial hashes blocks one after another in the calling goroutine.
func (h *Hasher) sumSerial(out []byte, size int, blocks [][]byte) {
	switch h.alg {
	case strong.MD5:
		for i, b := range blocks {
			d := md5.Sum(b)
			copy(out[i*size:(i+1)*size], d[:size])
		}
	case strong.SHA224:
		for i, b := range blocks {
			d := sha256.Sum224(b)
			copy(out[i*size:(i+1)*size], d[:size])
		}
	default:
		p := h.pool.Get().(*pooledHash)
		for i, b := range blocks {
			p.h.Reset()
			p.h.Write(b)
			d := p.h.Sum(p.buf[:0])
			copy(out[i*size:(i+1)*size], d[:size])
		}
		h.pool.Put(p)
	}
}

// Close waits for SumBlocks calls in flight, then stops the md5-simd servers
// and their goroutines. The Hasher must not be used afterwards; a late
// SumBlocks call still returns correct digests, without lanes. Close is
// idempotent and returns nil; the error is there for io.Closer.
func (h *Hasher) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.sets == nil {
		h.closed = true
		return nil
	}
	h.closed = true
	// Every call that takes a lane set holds mu for reading until it has
	// put the set back, so all nsets are in the channel now and no hasher
	// has work in flight: closing the servers cannot hang.
	for range h.nsets {
		(<-h.sets).close()
	}
	return nil
}
