package rollsum

import (
	"math/rand/v2"
	"testing"
)

// TestBlockVecLengths checks Block around the 32-byte vectors' edges, with
// random bytes and with 0xff (the largest lane values), against the
// definition, with the vector code (where the CPU has it) and without.
func TestBlockVecLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, vec := range []bool{true, false} {
		old := hasVec
		hasVec = hasVec && vec
		for _, n := range []int{31, 32, 33, 63, 95, 96, 97, 128, 160, 2047, 2048, 4095, 4096, 4097, 1<<17 + 33} {
			d := make([]byte, n)
			for i := range d {
				d[i] = byte(rng.Uint32())
			}
			if got, want := Block(d), naive(d); got != want {
				t.Errorf("vec %v: Block(len %d) = %+v, want %+v", vec, n, got, want)
			}
			for i := range d {
				d[i] = 0xff
			}
			if got, want := Block(d), naive(d); got != want {
				t.Errorf("vec %v: Block(%d bytes of 0xff) = %+v, want %+v", vec, n, got, want)
			}
		}
		hasVec = old
	}
}

// BenchmarkBlockNoVec is BenchmarkBlock without the vector code.
func BenchmarkBlockNoVec(b *testing.B) {
	old := hasVec
	hasVec = false
	defer func() { hasVec = old }()
	d := make([]byte, 4096)
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		Block(d)
	}
}
