// Package simd computes the strong block hashes of zsync control files (MD4,
// MD5, SHA-224) in batches, using the vector lanes of
// github.com/minio/md5-simd for MD5 when the CPU has them.
//
// # Lanes
//
// A Hasher for MD5 owns one md5-simd server per physical core (Options.Servers
// overrides this). Each server is a goroutine that hashes up to 16 streams at
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
// fewer than 4 blocks (a batch's short tail included) or its blocks average
// less than 2 KiB. The whole Hasher uses crypto/md5 when Options.Fallback is
// set, when the environment variable ZSYNCPIPE_NOSIMD (EnvNoSIMD) is true at
// NewHasher time, or when the CPU lacks AVX2 (see Available).
//
// MD4 and SHA-224 have no vector code: they, like the MD5 fallback, are
// hashed serially in the calling goroutine with reusable hash state, and
// callers provide parallelism by calling SumBlocks from several goroutines.
//
// Close waits for the calls in flight, then stops the md5-simd servers and
// their goroutines (md5-simd v1.1.2 hangs a hasher that writes to a closed
// server, so the order matters). A Hasher is not to be used after Close; a
// late call still returns correct digests, computed with crypto/md5.
package simd
