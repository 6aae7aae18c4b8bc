package simd

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

// TestX8 compares the 8-lane MD5 and MD4 with crypto/md5 and x/crypto/md4
// for every tail length around the padding boundaries and for 1 to 8 live
// lanes, with blocks in one buffer and in separate ones.
func TestX8(t *testing.T) {
	if !cpuHasX8() {
		t.Skip("no AVX2 on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 8*4200)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	sizes := []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 2048, 4096, 4097}
	for _, alg := range []strong.Algorithm{strong.MD5, strong.MD4} {
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
					if !x8(alg == strong.MD4, &sums, blocks) {
						t.Fatalf("%v size %d, %d lanes: x8 refused", alg, size, n)
					}
					for i, b := range blocks {
						if want := reference(t, alg, b); !bytes.Equal(sums[i][:], want) {
							t.Fatalf("%v size %d, %d lanes, shared %v: lane %d = %x, want %x", alg, size, n, shared, i, sums[i], want)
						}
					}
				}
			}
		}
	}
	var sums [8][md5.Size]byte
	if x8(false, &sums, [][]byte{buf[:64], buf[:128]}) {
		t.Error("x8 accepted blocks of different lengths")
	}
	if x8(false, &sums, nil) || x8(true, &sums, make([][]byte, 9)) {
		t.Error("x8 accepted 0 or 9 blocks")
	}
}

// BenchmarkX8 measures the 8-lane MD5 and MD4 alone (8 blocks per call)
// against crypto/md5 and x/crypto/md4, from one and two goroutines.
func BenchmarkX8(b *testing.B) {
	for _, n := range []int{2 << 10, 4 << 10} {
		for _, g := range []int{1, 2} {
			for _, impl := range []string{"x8", "md5", "x8md4", "md4"} {
				b.Run(fmt.Sprintf("%s/%dKiB/g%d", impl, n>>10, g), func(b *testing.B) {
					if (impl == "x8" || impl == "x8md4") && !cpuHasX8() {
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
							h := strong.MD4.New()
							for range per {
								switch impl {
								case "x8", "x8md4":
									x8(impl == "x8md4", &sums, blocks)
								case "md5":
									for i, blk := range blocks {
										sums[i] = md5.Sum(blk)
									}
								case "md4":
									for i, blk := range blocks {
										h.Reset()
										h.Write(blk)
										h.Sum(sums[i][:0])
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
