package simd

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestMD5x8 compares the 8-lane MD5 with crypto/md5 for every tail length
// around the padding boundaries and for 1 to 8 live lanes, with blocks in
// one buffer and in separate ones.
func TestMD5x8(t *testing.T) {
	if !cpuHasX8() {
		t.Skip("no AVX2 on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 8*4200)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	sizes := []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 2048, 4096, 4097}
	for _, size := range sizes {
		for n := 1; n <= 8; n++ {
			for _, shared := range []bool{true, false} {
				blocks := make([][]byte, n)
				for i := range blocks {
					if shared {
						off := (i * 4200) + i%3
						blocks[i] = buf[off : off+size]
					} else {
						blocks[i] = append([]byte(nil), buf[i*7:i*7+size]...)
					}
				}
				var sums [8][md5.Size]byte
				if !md5x8(&sums, blocks) {
					t.Fatalf("size %d, %d lanes: md5x8 refused", size, n)
				}
				for i, b := range blocks {
					if want := md5.Sum(b); sums[i] != want {
						t.Fatalf("size %d, %d lanes, shared %v: lane %d = %x, want %x", size, n, shared, i, sums[i], want)
					}
				}
			}
		}
	}
	var sums [8][md5.Size]byte
	if md5x8(&sums, [][]byte{buf[:64], buf[:128]}) {
		t.Error("md5x8 accepted blocks of different lengths")
	}
	if md5x8(&sums, nil) || md5x8(&sums, make([][]byte, 9)) {
		t.Error("md5x8 accepted 0 or 9 blocks")
	}
}

// BenchmarkMD5x8 measures the 8-lane MD5 alone (8 blocks per call) against
// crypto/md5, from one and two goroutines.
func BenchmarkMD5x8(b *testing.B) {
	for _, n := range []int{2 << 10, 4 << 10} {
		for _, g := range []int{1, 2} {
			for _, impl := range []string{"x8", "md5"} {
				b.Run(fmt.Sprintf("%s/%dKiB/g%d", impl, n>>10, g), func(b *testing.B) {
					if impl == "x8" && !cpuHasX8() {
						b.Skip("no AVX2")
					}
					b.SetBytes(int64(8 * n))
					var wg sync.WaitGroup
					per := b.N/g + 1
					for range g {
						data := make([]byte, 8*n)
						blocks := make([][]byte, 8)
						for i := range blocks {
							blocks[i] = data[i*n : (i+1)*n]
						}
						wg.Go(func() {
							var sums [8][md5.Size]byte
							for range per {
								if impl == "x8" {
									md5x8(&sums, blocks)
								} else {
									for i, blk := range blocks {
										sums[i] = md5.Sum(blk)
									}
								}
							}
						})
					}
					wg.Wait()
				})
			}
		}
	}
}
