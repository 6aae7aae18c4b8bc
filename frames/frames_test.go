package frames

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// content returns n bytes, compressible (text-like) in its first half and
// random in the second.
func content(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	words := []string{"alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta "}
	for i := 0; i < n/2; {
		i += copy(b[i:n/2], words[r.IntN(len(words))])
	}
	for i := n / 2; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// frameFile writes data's frames and returns them and their layout.
func frameFile(t *testing.T, data []byte, frameSize int64) ([]byte, Layout) {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, frameSize)
	// Odd write sizes, across frame boundaries.
	for p := data; len(p) > 0; {
		k := min(len(p), 1000+len(p)%777)
		if n, err := w.Write(p[:k]); n != k || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l := w.Layout()
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	if w.Stored() != int64(buf.Len()) {
		t.Fatalf("Stored %d, wrote %d", w.Stored(), buf.Len())
	}
	return buf.Bytes(), l
}

// TestWriterLayout: every frame decodes alone to its part of the file;
// compressible frames are compressed, random ones stored as they are.
func TestWriterLayout(t *testing.T) {
	data := content(10*4096 + 123)
	stored, l := frameFile(t, data, 4096)
	if len(l.Lengths) != 11 || l.Size != int64(len(data)) || l.FrameSize != 4096 {
		t.Fatalf("layout %+v", l)
	}
	var off int64
	dst := make([]byte, 4096)
	for i, n := range l.Lengths {
		fl := l.frameLen(i)
		switch {
		case i < 4 && int64(n) >= fl:
			t.Errorf("text frame %d stored in %d bytes", i, n)
		case i > 5 && int64(n) != fl:
			t.Errorf("random frame %d stored in %d bytes, not as it is", i, n)
		}
		got, err := l.Decode(dst, stored[off:off+int64(n)], i)
		if err != nil || !bytes.Equal(got, data[int64(i)*4096:int64(i)*4096+fl]) {
			t.Fatalf("frame %d: %v", i, err)
		}
		off += int64(n)
	}
	bad := l
	bad.Lengths = slices.Clone(l.Lengths)
	bad.Lengths[0] = 5000
	if bad.Check() == nil {
		t.Error("a frame longer than it decodes to passed Check")
	}
	bad.Lengths = l.Lengths[:3]
	if bad.Check() == nil {
		t.Error("too few frames passed Check")
	}
}

// counting is a source that counts the bytes it delivers, and may fail.
type counting struct {
	src   source.RangeSource
	bytes atomic.Int64
	fail  bool
}

func (c *counting) ReadRanges(ctx context.Context, rs []source.Range, fn func(source.Range, io.Reader) error) error {
	if c.fail {
		return errors.New("no frames here")
	}
	return c.src.ReadRanges(ctx, rs, func(r source.Range, data io.Reader) error {
		c.bytes.Add(r.Len())
		return fn(r, data)
	})
}

// collect reads ranges through s into a copy of the file and reports
// the pieces' bytes; each piece must lie within a range asked for.
func collect(t *testing.T, s *Source, ranges []source.Range, size int, fail func(source.Range) error) ([]byte, error) {
	t.Helper()
	out := make([]byte, size)
	err := s.ReadRanges(context.Background(), ranges, func(r source.Range, data io.Reader) error {
		in := slices.ContainsFunc(ranges, func(q source.Range) bool { return q.Start <= r.Start && r.End <= q.End })
		if !in || r.Start%1024 != 0 {
			t.Errorf("piece %v not a block-aligned part of a range asked for", r)
		}
		if fail != nil {
			if err := fail(r); err != nil {
				return err
			}
		}
		_, err := io.ReadFull(data, out[r.Start:r.End])
		return err
	})
	return out, err
}

// TestSource: dense ranges come from frames, sparse ones from the file,
// and every byte asked for arrives right, for fewer bytes.
func TestSource(t *testing.T) {
	const fsz = 8192
	data := content(40*fsz + 3000)
	stored, l := frameFile(t, data, fsz)
	file := &counting{src: source.ReaderAt{R: bytes.NewReader(data)}}
	fr := &counting{src: source.ReaderAt{R: bytes.NewReader(stored)}}
	s, err := NewSource(file, fr, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Frames 0-3 (text) nearly whole; one block of frame 5 (text: a
	// block costs less than its frame); random frames 30-33 whole; the
	// short last frame whole.
	ranges := []source.Range{{Start: 1024, End: 4 * fsz}, {Start: 5*fsz + 2048, End: 5*fsz + 3072}, {Start: 30 * fsz, End: 34 * fsz}, {Start: 40 * fsz, End: int64(len(data))}}
	s.Expect(ranges)
	out, err := collect(t, s, ranges, len(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, r := range ranges {
		if !bytes.Equal(out[r.Start:r.End], data[r.Start:r.End]) {
			t.Errorf("range %v differs", r)
		}
		want += r.Len()
	}
	st := s.Stats()
	if st.Frames != 4 || st.Decoded != 4*fsz-1024 {
		t.Errorf("stats %+v: want the 4 text frames", st)
	}
	if got := file.bytes.Load(); got != want-st.Decoded {
		t.Errorf("file delivered %d bytes, want %d", got, want-st.Decoded)
	}
	if fr.bytes.Load() != st.Stored || st.Stored >= st.Decoded/2 {
		t.Errorf("frames delivered %d bytes for %d (stats %+v)", fr.bytes.Load(), st.Decoded, st)
	}
	// Cost says what was fetched: the frames, the file's bytes, and an
	// overhead for each of the 4 frames and the 6 parts of ranges in
	// other frames.
	if c, want := l.Cost(ranges), st.Stored+file.bytes.Load()+10*RangeOverhead; c != want {
		t.Errorf("Cost = %d, want %d", c, want)
	}

	// Without Expect, everything comes from the file.
	s2, _ := NewSource(file, fr, l, nil)
	if _, err := collect(t, s2, ranges, len(data), nil); err != nil || s2.Stats().Frames != 0 {
		t.Errorf("without a plan: %v, %+v", err, s2.Stats())
	}
}

// TestSourceFallback: frames that fail to arrive, to decode, or that the
// consumer finds corrupt are read from the file; the consumer's own
// errors come back as they are.
func TestSourceFallback(t *testing.T) {
	const fsz = 8192
	data := content(16 * fsz)
	stored, l := frameFile(t, data, fsz)
	ranges := []source.Range{{Start: 0, End: 6 * fsz}}
	check := func(name string, frames source.RangeSource, fail func(source.Range) error) *Source {
		t.Helper()
		s, err := NewSource(source.ReaderAt{R: bytes.NewReader(data)}, frames, l, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Expect(ranges)
		out, err := collect(t, s, ranges, len(data), fail)
		if err != nil || !bytes.Equal(out[:6*fsz], data[:6*fsz]) {
			t.Errorf("%s: %v, or wrong data", name, err)
		}
		return s
	}
	check("frames gone", &counting{fail: true}, nil)
	garbled := slices.Clone(stored)
	for i := range garbled[:l.Lengths[0]+l.Lengths[1]] {
		garbled[i] ^= 0x55
	}
	check("frames garbled", source.ReaderAt{R: bytes.NewReader(garbled)}, nil)
	short := stored[:l.Lengths[0]+10]
	check("frames cut short", source.ReaderAt{R: bytes.NewReader(short)}, nil)
	var once atomic.Bool
	s := check("consumer finds a frame corrupt", source.ReaderAt{R: bytes.NewReader(stored)}, func(r source.Range) error {
		if r.Start == 2*fsz && !once.Swap(true) {
			return source.ErrCorrupt
		}
		return nil
	})
	if !s.off.Load() {
		t.Error("frames still in use after a corrupt one")
	}
	mine := errors.New("mine")
	s, _ = NewSource(source.ReaderAt{R: bytes.NewReader(data)}, source.ReaderAt{R: bytes.NewReader(stored)}, l, nil)
	s.Expect(ranges)
	if _, err := collect(t, s, ranges, len(data), func(source.Range) error { return mine }); !errors.Is(err, mine) {
		t.Errorf("consumer's error came back as %v", err)
	}
}

// FuzzLayout: any stored frames decode to their length or fail, never
// panic.
func FuzzLayout(f *testing.F) {
	stored, l := frameFile(&testing.T{}, content(3*4096), 4096)
	f.Add(stored[:l.Lengths[0]])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || len(b) > 4096 {
			return
		}
		dst := make([]byte, 4096)
		if out, err := l.Decode(dst, b, 0); err == nil && len(out) != 4096 {
			t.Fatalf("decoded %d bytes", len(out))
		}
	})
}

// TestReader: the whole file from its frames in order; frames cut short
// or garbled end it with an error, never with other data.
func TestReader(t *testing.T) {
	data := content(5*4096 + 77)
	stored, l := frameFile(t, data, 4096)
	if l.Stored() != int64(len(stored)) {
		t.Fatalf("Stored %d, want %d", l.Stored(), len(stored))
	}
	r, err := NewReader(bytes.NewReader(stored), l, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	short, _ := NewReader(bytes.NewReader(stored[:len(stored)-1]), l, nil)
	if _, err := io.ReadAll(short); err == nil {
		t.Error("frames cut short read without an error")
	}
	garbled := slices.Clone(stored)
	for i := range garbled[:l.Lengths[0]] {
		garbled[i] = 0xff
	}
	bad, _ := NewReader(bytes.NewReader(garbled), l, nil)
	if got, err := io.ReadAll(bad); !errors.Is(err, ErrFrame) || len(got) != 0 {
		t.Errorf("garbled first frame: %d bytes, %v", len(got), err)
	}
}

// expecting records what it is told to expect and what it is asked for.
type expecting struct {
	source.ReaderAt
	expected, asked []source.Range
}

func (e *expecting) Expect(rs []source.Range) { e.expected = slices.Clone(rs) }

func (e *expecting) ReadRanges(ctx context.Context, rs []source.Range, fn func(source.Range, io.Reader) error) error {
	e.asked = append(e.asked, rs...)
	return e.ReaderAt.ReadRanges(ctx, rs, fn)
}

// TestSourceExpect: File is told to expect exactly the ranges it is then
// asked for, when the ranges come in several calls (a range split between
// calls, ranges across frames the plan takes and leaves): a source that
// reads front to back would wait for any other.
func TestSourceExpect(t *testing.T) {
	const fsz = 8192
	data := content(20 * fsz)
	stored, l := frameFile(t, data, fsz)
	file := &expecting{ReaderAt: source.ReaderAt{R: bytes.NewReader(data)}}
	s, err := NewSource(file, source.ReaderAt{R: bytes.NewReader(stored)}, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Calls as stages.Fetch makes them: one range split at a call's end.
	calls := [][]source.Range{
		{{Start: 1024, End: 2048}, {Start: 3*fsz + 1024, End: 5 * fsz}},
		{{Start: 5 * fsz, End: 6*fsz + 2048}, {Start: 12 * fsz, End: 14*fsz + 1024}},
		// Random data, from the file: one range cut between two calls.
		{{Start: 16 * fsz, End: 17*fsz + 4096}},
		{{Start: 17*fsz + 4096, End: 19 * fsz}},
	}
	s.Expect(slices.Concat(calls...))
	for _, c := range calls {
		if _, err := collect(t, s, c, len(data), nil); err != nil {
			t.Fatal(err)
		}
	}
	if s.Stats().Frames == 0 {
		t.Fatal("no frames used: the test shows nothing")
	}
	if !slices.Equal(file.expected, file.asked) {
		t.Errorf("File expected %v, was asked for %v", file.expected, file.asked)
	}
}

// executable returns the test binary: real compiled code, the kind of
// file frames are for.
func executable(b *testing.B) []byte {
	p, err := os.Executable()
	if err != nil {
		b.Skip(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkWriter: what the publisher spends on an executable's frames.
func BenchmarkWriter(b *testing.B) {
	data := executable(b)
	b.SetBytes(int64(len(data)))
	var stored int64
	for b.Loop() {
		w := NewWriter(io.Discard, 0)
		w.Write(data)
		w.Close()
		stored = w.Stored()
	}
	b.ReportMetric(float64(stored)/float64(len(data)), "stored/byte")
}

// BenchmarkReader: what a client spends decoding an executable's frames.
func BenchmarkReader(b *testing.B) {
	data := executable(b)
	var buf bytes.Buffer
	w := NewWriter(&buf, 0)
	w.Write(data)
	w.Close()
	l := w.Layout()
	b.SetBytes(int64(len(data)))
	var bufs Buffers
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(buf.Bytes()), l, &bufs)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
}

// TestBuffersShared: Sources that share Buffers reuse the buffers of
// frames instead of allocating their own, as a mirror's hundreds of
// rebuilt files do.
func TestBuffersShared(t *testing.T) {
	const fsz = 64 << 10
	data := content(4 * fsz)
	stored, l := frameFile(t, data, fsz)
	ranges := []source.Range{{Start: 0, End: 2 * fsz}}
	allocated := func(bufs *Buffers) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 50 {
			s, err := NewSource(source.ReaderAt{R: bytes.NewReader(data)}, source.ReaderAt{R: bytes.NewReader(stored)}, l, bufs)
			if err != nil {
				t.Fatal(err)
			}
			s.Expect(ranges)
			if err := s.ReadRanges(context.Background(), ranges, func(r source.Range, d io.Reader) error {
				_, err := io.Copy(io.Discard, d)
				return err
			}); err != nil || s.Stats().Frames != 2 {
				t.Fatalf("%v, %+v", err, s.Stats())
			}
			r, err := NewReader(bytes.NewReader(stored), l, bufs)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	own, shared := allocated(nil), allocated(new(Buffers))
	// 50 × 2 buffers of 128 KiB without sharing; the race detector
	// drops some of what a sync.Pool is given, so some are made again.
	if shared*2 > own {
		t.Errorf("allocated %d bytes with shared buffers, %d without", shared, own)
	}
}
