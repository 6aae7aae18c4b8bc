package control

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

// sumsFile returns a control file of length bytes at blocksize bs with
// random records, as DecodeSums returns one.
func sumsFile(r *rand.Rand, length int64, bs int) *File {
	h := Header{Version: "0.7.2", Blocksize: bs, Length: length, StrongAlgorithm: strong.MD5,
		HashLengths: DefaultHashLengths(length, bs), SHA256: bytes.Repeat([]byte{7}, 32)}
	hl := h.HashLengths
	c := Checksums{RsumBytes: hl.RsumBytes, StrongBytes: hl.StrongBytes}
	for range h.Blocks() {
		c.Rsum = append(c.Rsum, r.Uint32()&RsumMask(hl.RsumBytes))
		for range hl.StrongBytes {
			c.Strong = append(c.Strong, byte(r.Uint32()))
		}
	}
	if c.Rsum == nil {
		c.Rsum, c.Strong = []uint32{}, []byte{}
	}
	return &File{Header: h, Checksums: c}
}

func TestSumsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, length := range []int64{0, 1, 255, 256, 257, 5325, 16383, 262144} {
		bs := SumsBlocksize(length)
		f := sumsFile(r, length, bs)
		b, err := EncodeSums(f)
		if err != nil {
			t.Fatalf("length %d: %v", length, err)
		}
		rb, sb := f.HashLengths.RsumBytes, f.HashLengths.StrongBytes
		if want := 6 + int(f.Blocks())*(rb+sb); len(b) != want {
			t.Fatalf("length %d: %d bytes, want %d", length, len(b), want)
		}
		g, err := DecodeSums(b, length, f.SHA256)
		if err != nil {
			t.Fatalf("length %d: %v", length, err)
		}
		if !reflect.DeepEqual(f, g) {
			t.Fatalf("length %d: decoded %+v, want %+v", length, g, f)
		}
	}
}

func TestSumsBlocksize(t *testing.T) {
	for _, c := range []struct {
		length int64
		want   int
	}{{0, 256}, {1024, 256}, {16383, 256}, {20000, 256}, {30000, 512}, {54000, 512}, {100000, 1024}, {262144, 1024}, {1 << 20, 2048}, {1 << 40, 2048}} {
		if got := SumsBlocksize(c.length); got != c.want {
			t.Errorf("SumsBlocksize(%d) = %d, want %d", c.length, got, c.want)
		}
	}
}

func TestDecodeSumsRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	f := sumsFile(r, 5000, 256)
	good, err := EncodeSums(f)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	for name, c := range map[string]struct {
		b      []byte
		length int64
		hash   []byte
	}{
		"empty":          {nil, 5000, f.SHA256},
		"short header":   {good[:5], 5000, f.SHA256},
		"version":        {mod(0, 2), 5000, f.SHA256},
		"algorithm":      {mod(5, 4), 5000, f.SHA256},
		"tiny blocks":    {mod(1, 3), 5000, f.SHA256},
		"huge blocks":    {mod(1, 40), 5000, f.SHA256},
		"seq_matches":    {mod(2, 3), 5000, f.SHA256},
		"rsum bytes":     {mod(3, 5), 5000, f.SHA256},
		"strong bytes":   {mod(4, 17), 5000, f.SHA256},
		"one byte short": {good[:len(good)-1], 5000, f.SHA256},
		"one byte more":  {append(bytes.Clone(good), 0), 5000, f.SHA256},
		"other length":   {good, 5300, f.SHA256},
		"negative":       {good, -1, f.SHA256},
		"huge":           {mod(1, 4), 1 << 61, f.SHA256}, // 2^57 blocks of 16 bytes
		"no hash":        {good, 5000, nil},
	} {
		if _, err := DecodeSums(c.b, c.length, c.hash); !errors.Is(err, ErrSums) {
			t.Errorf("%s: got %v, want ErrSums", name, err)
		}
	}
}

func TestEncodeSumsRefusesMD4(t *testing.T) {
	f := sumsFile(rand.New(rand.NewPCG(5, 6)), 3000, 256)
	f.StrongAlgorithm = strong.MD4
	if _, err := EncodeSums(f); err == nil {
		t.Fatal("EncodeSums took MD4 block hashes")
	}
}

func FuzzDecodeSums(f *testing.F) {
	good, _ := EncodeSums(sumsFile(rand.New(rand.NewPCG(7, 8)), 1000, 256))
	f.Add(good, int64(1000))
	f.Fuzz(func(t *testing.T, b []byte, length int64) {
		g, err := DecodeSums(b, length, make([]byte, 32))
		if err != nil {
			return
		}
		back, err := EncodeSums(g)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("decoded %d bytes, encoded again: %d bytes, %v", len(b), len(back), err)
		}
	})
}

// TestSumsHashLengths: one record layout per block size, whatever the
// length, and enough strong-hash bytes for the largest file with sums.
func TestSumsHashLengths(t *testing.T) {
	for _, bs := range []int{256, 512, 1024, 2048} {
		got := SumsHashLengths(bs)
		if want := DefaultHashLengths(SumsMaxLength, bs); got != want {
			t.Errorf("block size %d: %v, want %v", bs, got, want)
		}
		if got.SeqMatches != 2 || got.StrongBytes < DefaultHashLengths(1024, bs).StrongBytes {
			t.Errorf("block size %d: %v", bs, got)
		}
	}
}
