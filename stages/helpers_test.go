package stages

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// randData returns n deterministic pseudo-random bytes for the given seed.
func randData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// makeControl computes the control file of data with block size bs and the
// given record layout (zero: zsyncmake's defaults) and MD5 block hashes.
func makeControl(t testing.TB, data []byte, bs int, hl control.HashLengths) *control.File {
	t.Helper()
	f, err := BlockChecksums(context.Background(), bytes.NewReader(data), ChecksumOptions{
		Blocksize: bs, HashLengths: hl, SHA1: true, SHA256: true,
	})
	if err != nil {
		t.Fatalf("BlockChecksums: %v", err)
	}
	return f
}

// seedOf wraps data as a Seed.
func seedOf(name string, data []byte) Seed {
	return Seed{Name: name, R: bytes.NewReader(data), Size: int64(len(data))}
}

// blockOf returns block i of data, zero-padded to bs bytes.
func blockOf(data []byte, bs int, i int64) []byte {
	b := make([]byte, bs)
	start := int(i) * bs
	copy(b, data[start:min(start+bs, len(data))])
	return b
}

// seedBlock returns bs bytes of seed at off, zero-padded past its end.
func seedBlock(seed []byte, bs int, off int64) []byte {
	b := make([]byte, bs)
	if off < int64(len(seed)) {
		copy(b, seed[off:])
	}
	return b
}

// checkLocations fails unless every block that Matches locates in seeds
// holds, at that location, the data of the target block.
func checkLocations(t *testing.T, m *Matches, target []byte, bs int, seeds ...[]byte) {
	t.Helper()
	for i := range m.Blocks() {
		s, off, ok := m.Lookup(i)
		if !ok {
			continue
		}
		if s < 0 || s >= len(seeds) {
			t.Errorf("block %d: located in seed %d of %d", i, s, len(seeds))
			continue
		}
		if !bytes.Equal(seedBlock(seeds[s], bs, off), blockOf(target, bs, i)) {
			t.Errorf("block %d: data at seed %d offset %d is not the block's", i, s, off)
		}
	}
}

// memFile is an in-memory io.WriterAt that grows as needed and can be
// truncated, like an *os.File.
type memFile struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(m.buf)) {
		m.buf = append(m.buf, make([]byte, end-int64(len(m.buf)))...)
	}
	copy(m.buf[off:], p)
	return len(p), nil
}

func (m *memFile) Truncate(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size <= int64(len(m.buf)) {
		m.buf = m.buf[:size]
	} else {
		m.buf = append(m.buf, make([]byte, size-int64(len(m.buf)))...)
	}
	return nil
}

func (m *memFile) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.buf)
}

// newHasher returns a hasher closed at the end of the test.
func newHasher(t testing.TB, alg strong.Algorithm, opts simd.Options) *simd.Hasher {
	t.Helper()
	h, err := simd.NewHasher(alg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
