// Package simd computes the strong block hashes of zsync control files (MD4,
// MD5, SHA-224) in batches, using 8 AVX2 vector lanes for MD4 and MD5 when
// the CPU has them.
//
// # Eight lanes in the calling goroutine
//
// On a CPU with AVX2, SumBlocks hashes its blocks 8 at a time: each group
// of 8 blocks of one length goes through one pass of an 8-lane MD5 (or
// MD4) block function, which reads every block where it lies (by 32-bit
// offsets from one base; each 64-byte block of the 8 lanes is loaded and
// transposed into 16 vectors, not gathered word by word, which is slow on
// AMD Zen) and shares one padding block when the length is a multiple of
// 64. There is no copy, no
// goroutine and no channel, so SumBlocks runs on the caller's core and
// callers get parallelism by calling it from several goroutines. The MD5
// block function is md5-simd's AVX2 assembly (block8), copied because the
// package reaches it only through its servers; the MD4 one applies the
// same scheme to MD4's three rounds. On this project's AVX2 machine (AMD
// Zen 3) it hashes 4 KiB blocks at about 3.1 GB/s per core (MD4 3.7),
// against 0.6-0.75 for crypto/md5 and 0.87 for md5-simd's servers
// (BenchmarkX8, BenchmarkSumBlocks). Groups of blocks of mixed lengths, and a batch's
// trailing group of fewer than 4 blocks, are hashed serially (or on
// md5-simd servers if Options.Servers asks for some).
//
// # md5-simd servers
//
// With Options.Servers > 0, a Hasher for MD5 also owns that many md5-simd
// servers, used for the groups the 8-lane path does not take (and for every
// group on a CPU without it, which cannot happen on amd64 today: both need
// AVX2). Each server is a goroutine that hashes up to 16 streams at
// once with AVX-512 (or two 8-lane halves with AVX2), and each comes with 16
// md5-simd hashers created once and reused with Reset: md5-simd v1.1.2 never
// forgets a closed hasher, so creating one per block would be ruinous. A
// server and its hashers form a lane set; the lane sets wait in a channel used
// as a pool, and a SumBlocks call takes one for its whole batch, so as many
// calls run on the lanes at once as there are servers.
//
// The lanes fill only when many hashers have data at the same time, so a call
// works through its batch 16 blocks at a time. For blocks up to 64 KiB the
// calling goroutine writes all 16 hashers, then collects the 16 sums; larger
// blocks get one goroutine per hasher, because a single writer would stall on
// the first hasher's short input queue while the other lanes sit empty.
// Batches should therefore hold a multiple of 16 blocks.
//
// # Fallback
//
// md5-simd runs a lone busy lane on scalar code slower than crypto/md5, and it
// costs about a microsecond of channel traffic per block. A group of blocks
// is therefore hashed with crypto/md5 in the calling goroutine when it has
// fewer than 4 blocks (a batch's short tail included) or, on md5-simd's
// servers, when its blocks average less than 2 KiB. The whole Hasher uses
// crypto/md5 (x/crypto/md4) when Options.Fallback is set, when the
// environment variable ZSYNCPIPE_NOSIMD (EnvNoSIMD) is true at NewHasher
// time, or when the CPU lacks AVX2 (see Available).
//
// SHA-224 has no vector code: it, like the fallbacks, is hashed serially
// in the calling goroutine with reusable hash state, and callers provide
// parallelism by calling SumBlocks from several goroutines.
//
// Close waits for the calls in flight, then stops the md5-simd servers and
// their goroutines (md5-simd v1.1.2 hangs a hasher that writes to a closed
// server, so the order matters). A Hasher is not to be used after Close; a
// late call still returns correct digests, computed with crypto/md5.
package simd
