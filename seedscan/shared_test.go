package seedscan

import (
	"math/rand/v2"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// TestSharedRecords checks sharedRecords against its definition, pair by
// pair: records equal in the rolling checksum and the first four strong
// bytes are shared, whatever follows them; records that differ in either
// are not, and neither are records whose keys only hash alike.
func TestSharedRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 3, 100, 1500} {
		for _, sb := range []int{3, 5, 16} {
			c := &control.Checksums{RsumBytes: 2, StrongBytes: sb, Rsum: make([]uint32, n), Strong: make([]byte, n*sb)}
			for i := range n {
				// Few distinct values, so that duplicates and near
				// duplicates (same checksum, other hash) are many.
				c.Rsum[i] = uint32(rng.IntN(40))
				for j := range sb {
					c.Strong[i*sb+j] = byte(rng.IntN(3))
				}
			}
			got := sharedRecords(c)
			if len(got) != n {
				t.Fatalf("%d blocks: %d flags", n, len(got))
			}
			key := func(i int) [5]uint32 {
				var k [5]uint32
				k[0] = c.Rsum[i]
				for j := 0; j < min(4, sb); j++ {
					k[1+j] = uint32(c.StrongOf(i)[j])
				}
				return k
			}
			for i := range n {
				want := false
				for j := range n {
					if j != i && key(j) == key(i) {
						want = true
						break
					}
				}
				if got[i] != want {
					t.Errorf("%d blocks, %d strong bytes: block %d shared = %v, want %v", n, sb, i, got[i], want)
				}
			}
		}
	}
}

// BenchmarkSharedRecords times sharedRecords on as many blocks as the
// reference pair has (go1.26.8.tar at 4 KiB: 54,883), random records with
// a few shared: it runs on one core between a sync's scan and its fetch.
func BenchmarkSharedRecords(b *testing.B) {
	const n, sb = 54883, 5
	rng := rand.New(rand.NewPCG(9, 10))
	c := &control.Checksums{RsumBytes: 2, StrongBytes: sb, Rsum: make([]uint32, n), Strong: make([]byte, n*sb)}
	for i := range n {
		c.Rsum[i] = uint32(rng.IntN(1 << 16))
		for j := range sb {
			c.Strong[i*sb+j] = byte(rng.Uint32())
		}
		if i%100 == 99 { // about 1 % shared, as in a tar's padding blocks
			c.Rsum[i] = c.Rsum[i-1]
			copy(c.Strong[i*sb:(i+1)*sb], c.Strong[(i-1)*sb:i*sb])
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		sharedRecords(c)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/block")
}
