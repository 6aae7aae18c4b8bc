package rollsum

import (
	"math/rand/v2"
	"testing"
)

// naive computes the checksum straight from its definition.
func naive(d []byte) Sum {
	var a, b uint16
	n := len(d)
	for i, c := range d {
		a += uint16(c)
		b += uint16(n-i) * uint16(c)
	}
	return Sum{A: a, B: b}
}

func TestBlockMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 1000, 2048, 4096, 65536, 70001} {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		if got, want := Block(d), naive(d); got != want {
			t.Errorf("Block(len %d) = %+v, want %+v", n, got, want)
		}
	}
}

// TestBlockLaneLimits uses bytes of 255, which drive every SWAR lane to its
// largest value: an overflow would show here first.
func TestBlockLaneLimits(t *testing.T) {
	for _, n := range []int{127, 128, 129, 256, 4096, 65536} {
		d := make([]byte, n)
		for i := range d {
			d[i] = 0xff
		}
		if got, want := Block(d), naive(d); got != want {
			t.Errorf("Block(%d bytes of 0xff) = %+v, want %+v", n, got, want)
		}
	}
}

func TestRollMatchesRecomputation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<17)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	// Include sizes of 2^16 and more, where size*out vanishes mod 2^16.
	for _, size := range []int{1, 16, 2048, 4096, 65536, 65537} {
		s := Block(data[:size])
		pos := 0
		for step := 0; step < 2000; step++ {
			// Roll a random number of bytes, then compare with a fresh sum.
			k := rng.IntN(64) + 1
			for j := 0; j < k && pos+size < len(data); j++ {
				s = s.Roll(data[pos], data[pos+size], size)
				pos++
			}
			if want := naive(data[pos : pos+size]); s != want {
				t.Fatalf("size %d offset %d: rolled %+v, recomputed %+v", size, pos, s, want)
			}
			if pos+size >= len(data) {
				break
			}
		}
	}
}

func TestPacked(t *testing.T) {
	if got := (Sum{A: 0xf003, B: 0x14de}).Packed(); got != 0xf00314de {
		t.Fatalf("Packed = %#x", got)
	}
}

func BenchmarkBlock(b *testing.B) {
	d := make([]byte, 4096)
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		Block(d)
	}
}

func BenchmarkRoll(b *testing.B) {
	d := make([]byte, 1<<20)
	for i := range d {
		d[i] = byte(i * 7)
	}
	const size = 4096
	b.SetBytes(int64(len(d) - size))
	for b.Loop() {
		s := Block(d[:size])
		for p := 0; p+size < len(d); p++ {
			s = s.Roll(d[p], d[p+size], size)
		}
		_ = s
	}
}

// The checksum of a block made of chunks, from the chunks' checksums, is
// the block's, wherever the writes to Chunks are cut, past the data's end
// too (zeros).
func TestChunksCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2047, 2048, 2049, 4096, 3*4096 + 5, 65536 + 100} {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		var c Chunks
		for rest := d; len(rest) > 0; {
			k := min(len(rest), rng.IntN(5000))
			c.Write(rest[:k])
			rest = rest[k:]
		}
		sums := c.Sums()
		if want := (n + ChunkSize - 1) / ChunkSize; len(sums) != want {
			t.Fatalf("%d bytes: %d chunk sums, want %d", n, len(sums), want)
		}
		padded := make([]byte, (len(sums)+4)*ChunkSize)
		copy(padded, d)
		for _, k := range []int{1, 2, 4} {
			for j := 0; j < len(sums); j += k {
				want := naive(padded[j*ChunkSize : (j+k)*ChunkSize])
				if got := Combine(sums[j:], k); got != want {
					t.Errorf("%d bytes, block of %d chunks at chunk %d: %+v, want %+v", n, k, j, got, want)
				}
			}
		}
		if again := c.Sums(); len(again) != 0 {
			t.Errorf("Sums did not start afresh: %d sums", len(again))
		}
	}
}
