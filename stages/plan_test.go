package stages

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// TestBlueprint checks that copies are merged into runs only when block,
// seed and offset all continue, and that missing ranges are maximal and
// clipped at Length.
func TestBlueprint(t *testing.T) {
	const bs = 1024
	h := &control.Header{Blocksize: bs, Length: 10*bs + 100} // 11 blocks
	m := NewMatches(h.Blocks())
	m.Set(0, 0, 0)
	m.Set(1, 0, bs)
	m.Set(2, 0, 2*bs)
	m.Set(3, 0, 5000) // offset does not continue
	m.Set(4, 1, 6024) // seed changes
	m.Set(7, 1, 0)
	plan := Blueprint(h, m)
	wantCopies := []Copy{
		{Index: 0, Count: 3, Seed: 0, Offset: 0},
		{Index: 3, Count: 1, Seed: 0, Offset: 5000},
		{Index: 4, Count: 1, Seed: 1, Offset: 6024},
		{Index: 7, Count: 1, Seed: 1, Offset: 0},
	}
	wantMissing := []source.Range{{Start: 5 * bs, End: 7 * bs}, {Start: 8 * bs, End: 10*bs + 100}}
	if !reflect.DeepEqual(plan.Copies, wantCopies) {
		t.Errorf("copies %+v, want %+v", plan.Copies, wantCopies)
	}
	if !reflect.DeepEqual(plan.Missing, wantMissing) {
		t.Errorf("missing %+v, want %+v", plan.Missing, wantMissing)
	}
	if plan.Reused != 6*bs || plan.MissingBytes != 4*bs+100 || plan.Reused+plan.MissingBytes != h.Length {
		t.Errorf("reused %d missing %d", plan.Reused, plan.MissingBytes)
	}

	// The last (short) block found: Reused counts its real length.
	m.Set(10, 0, 3*bs)
	plan = Blueprint(h, m)
	if want := []source.Range{{Start: 5 * bs, End: 7 * bs}, {Start: 8 * bs, End: 10 * bs}}; !reflect.DeepEqual(plan.Missing, want) {
		t.Errorf("missing %+v, want %+v", plan.Missing, want)
	}
	if plan.Reused+plan.MissingBytes != h.Length {
		t.Errorf("reused %d + missing %d != length %d", plan.Reused, plan.MissingBytes, h.Length)
	}

	// Nothing found: one range; everything found: none.
	plan = Blueprint(h, NewMatches(h.Blocks()))
	if want := []source.Range{{Start: 0, End: h.Length}}; !reflect.DeepEqual(plan.Missing, want) || len(plan.Copies) != 0 {
		t.Errorf("nothing found: missing %+v copies %+v", plan.Missing, plan.Copies)
	}
	all := NewMatches(h.Blocks())
	for i := range all.Blocks() {
		all.Set(i, 2, 10+i*bs)
	}
	plan = Blueprint(h, all)
	if want := []Copy{{Index: 0, Count: 11, Seed: 2, Offset: 10}}; !reflect.DeepEqual(plan.Copies, want) || len(plan.Missing) != 0 || plan.Reused != h.Length {
		t.Errorf("all found: copies %+v missing %+v", plan.Copies, plan.Missing)
	}
	// An empty target.
	plan = Blueprint(&control.Header{Blocksize: bs}, NewMatches(0))
	if len(plan.Copies) != 0 || len(plan.Missing) != 0 {
		t.Errorf("empty target: %+v", plan)
	}
}

// TestPatcher writes a target in shuffled runs over several calls, with
// duplicates and a padded last block, and checks the result, Missing and
// Finish.
func TestPatcher(t *testing.T) {
	const bs = 256
	target := randData(101, 37*bs+77) // 38 blocks
	h := &control.Header{Blocksize: bs, Length: int64(len(target))}
	n := h.Blocks()
	out := &memFile{}
	pt := NewPatcher(out, h)

	// Runs of 1..3 blocks, in random order; the last one zero-padded.
	var runs []Block
	for i := int64(0); i < n; {
		k := min(int64(1+i%3), n-i)
		data := make([]byte, k*bs)
		copy(data, target[i*bs:])
		runs = append(runs, Block{Index: i, Data: data})
		i += k
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(runs), func(a, b int) { runs[a], runs[b] = runs[b], runs[a] })

	if err := pt.Finish(); err == nil {
		t.Errorf("Finish before any write: no error")
	}
	if want := []source.Range{{Start: 0, End: h.Length}}; !reflect.DeepEqual(pt.Missing(), want) {
		t.Errorf("Missing before writes: %v", pt.Missing())
	}
	// First half, then a batch with a repeated run, then the rest.
	half := len(runs) / 2
	if err := pt.Write(Batch(runs[:half])); err != nil {
		t.Fatal(err)
	}
	if pt.Complete() {
		t.Errorf("complete after half the runs")
	}
	if err := pt.Finish(); err == nil || !strings.Contains(err.Error(), "never written") {
		t.Errorf("Finish when incomplete: %v", err)
	}
	for _, r := range pt.Missing() {
		for off := r.Start; off < r.End; off += bs {
			if pt.Done(off / bs) {
				t.Errorf("Missing lists written block %d", off/bs)
			}
		}
		if r.End > h.Length || r.Start%bs != 0 {
			t.Errorf("Missing range %v not block-aligned or past the end", r)
		}
	}
	var missingBytes int64
	for _, r := range pt.Missing() {
		missingBytes += r.Len()
	}
	if err := pt.Write(Batch{runs[0], runs[half]}); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs[half+1:] {
		if err := pt.WriteBlock(r); err != nil {
			t.Fatal(err)
		}
	}
	if !pt.Complete() || len(pt.Missing()) != 0 {
		t.Fatalf("incomplete after all runs: missing %v", pt.Missing())
	}
	if err := pt.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), target) {
		t.Errorf("output differs from the target")
	}
	// Every byte once, the repeated run twice; padding is never written.
	if w, want := pt.Written(), h.Length+min(int64(len(runs[0].Data)), h.Length-runs[0].Index*bs); w != want {
		t.Errorf("Written %d, want %d", w, want)
	}

	// Finish truncates an output longer than the target.
	out2 := &memFile{buf: make([]byte, 2*len(target))}
	pt2 := NewPatcher(out2, h)
	if err := pt2.WriteBlock(Block{Index: 0, Data: target}); err != nil {
		t.Fatal(err)
	}
	if err := pt2.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out2.Bytes(), target) {
		t.Errorf("Finish did not truncate: %d bytes", len(out2.Bytes()))
	}

	// Malformed runs.
	if err := pt2.WriteBlock(Block{Index: n, Data: make([]byte, bs)}); err == nil {
		t.Errorf("block past the end accepted")
	}
	if err := pt2.WriteBlock(Block{Index: -1, Data: make([]byte, bs)}); err == nil {
		t.Errorf("negative block accepted")
	}
	if err := pt2.WriteBlock(Block{Index: 2, Data: make([]byte, bs+1)}); err == nil {
		t.Errorf("run of partial blocks accepted")
	}
}

// TestPatcherConcurrent writes blocks from several goroutines at once.
func TestPatcherConcurrent(t *testing.T) {
	const bs = 64
	target := randData(111, 1000*bs+1)
	h := &control.Header{Blocksize: bs, Length: int64(len(target))}
	out := &memFile{}
	pt := NewPatcher(out, h)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := int64(g); i < h.Blocks(); i += 2 { // every block twice
				if err := pt.WriteBlock(Block{Index: i, Data: target[i*bs : min((i+1)*bs, h.Length)]}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := pt.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), target) {
		t.Errorf("output differs")
	}
}

// TestCopyFromSeeds checks the plan's copies, including a match that runs
// into the zero padding past a seed's end.
func TestCopyFromSeeds(t *testing.T) {
	const bs = 512
	target := randData(121, 20*bs+33)
	seed := append(randData(122, 100), target[:15*bs]...)
	tail := target[15*bs:] // short seed holding the rest, last block padded
	f := makeControl(t, target, bs, seq2)
	m := runDelta(t, f, DeltaOptions{}, seed, tail)
	if !m.Complete() {
		t.Fatalf("missing %v", missingBlocks(m))
	}
	plan := Blueprint(&f.Header, m)
	out := &memFile{}
	pt := NewPatcher(out, &f.Header)
	if err := pt.CopyFromSeeds(context.Background(), plan, []Seed{seedOf("a", seed), seedOf("b", tail)}); err != nil {
		t.Fatal(err)
	}
	if err := pt.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), target) {
		t.Errorf("output differs")
	}
	if err := NewPatcher(&memFile{}, &f.Header).CopyFromSeeds(context.Background(), plan, []Seed{seedOf("a", seed)}); err == nil {
		t.Errorf("plan naming a missing seed accepted")
	}
	// A seed that shrank after it was scanned (Size is stale).
	short := []Seed{{Name: "a", R: bytes.NewReader(seed[:len(seed)/2]), Size: int64(len(seed))}, seedOf("b", tail)}
	if err := NewPatcher(&memFile{}, &f.Header).CopyFromSeeds(context.Background(), plan, short); err == nil {
		t.Errorf("truncated seed accepted")
	}
}

// TestVerify checks the whole-file check.
func TestVerify(t *testing.T) {
	data := randData(131, 12345)
	s1, s256 := sha1.Sum(data), sha256.Sum256(data)
	bad := bytes.Clone(data)
	bad[5000] ^= 1
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		h    control.Header
		data []byte
		want error // nil: success
	}{
		{"both", control.Header{Length: 12345, SHA1: s1[:], SHA256: s256[:]}, data, nil},
		{"sha1 only", control.Header{Length: 12345, SHA1: s1[:]}, data, nil},
		{"sha256 only", control.Header{Length: 12345, SHA256: s256[:]}, data, nil},
		{"wrong sha1", control.Header{Length: 12345, SHA1: s1[:]}, bad, ErrMismatch},
		{"wrong sha256", control.Header{Length: 12345, SHA256: s256[:]}, bad, ErrMismatch},
		{"wrong sha1, good sha256", control.Header{Length: 12345, SHA1: make([]byte, 20), SHA256: s256[:]}, data, ErrMismatch},
		{"long", control.Header{Length: 12345, SHA256: s256[:]}, append(bytes.Clone(data), 0), ErrMismatch},
		{"short", control.Header{Length: 12345, SHA256: s256[:]}, data[:12344], ErrMismatch},
		{"no hash", control.Header{Length: 12345}, data, ErrNoFileHash},
		{"no hash, wrong length", control.Header{Length: 12}, data, ErrMismatch},
	} {
		err := Verify(ctx, bytes.NewReader(tc.data), &tc.h)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Verify(cctx, bytes.NewReader(data), &control.Header{Length: 12345, SHA1: s1[:]}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := Verify(ctx, io.MultiReader(bytes.NewReader(data[:10]), errReader{}), &control.Header{Length: 12345, SHA1: s1[:]}); err == nil || errors.Is(err, ErrMismatch) {
		t.Errorf("read error: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("disk on fire") }

// TestCopyFromSeedsLargeBlocks checks copies with blocks larger than the
// copy buffer (1 MiB).
func TestCopyFromSeedsLargeBlocks(t *testing.T) {
	const bs = 2 << 20
	target := randData(141, 2*bs+1000)
	h := &control.Header{Blocksize: bs, Length: int64(len(target))}
	m := NewMatches(h.Blocks())
	for i := range m.Blocks() {
		m.Set(i, 0, i*bs)
	}
	out := &memFile{}
	pt := NewPatcher(out, h)
	if err := pt.CopyFromSeeds(context.Background(), Blueprint(h, m), []Seed{seedOf("t", target)}); err != nil {
		t.Fatal(err)
	}
	if err := pt.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), target) {
		t.Errorf("output differs")
	}
}

// TestPatcherAssumeZeroed checks that blocks of zeros are not written to an
// output that reads as zeros, and are still counted as in place.
func TestPatcherAssumeZeroed(t *testing.T) {
	const bs = 64
	f := makeControl(t, make([]byte, 4*bs), bs, seq2)
	out := &countingWriter{}
	pt := NewPatcher(out, &f.Header)
	pt.AssumeZeroed()
	reported := int64(0)
	pt.OnWrite(func(n int64) { reported += n })
	data := make([]byte, 4*bs)
	data[3*bs] = 1 // the last block is not zeros
	if err := pt.Write(Batch{{Index: 0, Data: data[:3*bs]}, {Index: 3, Data: data[3*bs:]}}); err != nil {
		t.Fatal(err)
	}
	if !pt.Complete() {
		t.Fatal("zero blocks not counted as written")
	}
	if reported != bs {
		t.Errorf("OnWrite saw %d bytes, want the %d written", reported, bs)
	}
	if out.writes != 1 || out.bytes != bs {
		t.Errorf("%d writes of %d bytes; want one write of the non-zero block", out.writes, out.bytes)
	}
	// Without AssumeZeroed every block is written.
	out2 := &countingWriter{}
	pt2 := NewPatcher(out2, &f.Header)
	if err := pt2.Write(Batch{{Index: 0, Data: data}}); err != nil {
		t.Fatal(err)
	}
	if out2.bytes != 4*bs {
		t.Errorf("wrote %d bytes, want %d", out2.bytes, 4*bs)
	}
}

type countingWriter struct{ writes, bytes int }

func (c *countingWriter) WriteAt(p []byte, off int64) (int, error) {
	c.writes++
	c.bytes += len(p)
	return len(p), nil
}

// truncCounter counts the Truncate calls on a memFile.
type truncCounter struct {
	memFile
	truncs int
}

func (c *truncCounter) Truncate(size int64) error {
	c.truncs++
	return c.memFile.Truncate(size)
}

// TestPatcherSized checks that Finish sets the output's length, unless
// the patcher is told the output has it already.
func TestPatcherSized(t *testing.T) {
	const bs = 256
	target := randData(103, 5*bs+7)
	h := &control.Header{Blocksize: bs, Length: int64(len(target))}
	for _, sized := range []bool{false, true} {
		out := &truncCounter{}
		out.Truncate(h.Length)
		out.truncs = 0
		pt := NewPatcher(out, h)
		if sized {
			pt.Sized()
		}
		if err := pt.WriteBlock(Block{Index: 0, Data: append(bytes.Clone(target), make([]byte, bs-7)...)}); err != nil {
			t.Fatal(err)
		}
		if err := pt.Finish(); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 0}[sized]; out.truncs != want {
			t.Errorf("sized %v: Finish truncated %d times, want %d", sized, out.truncs, want)
		}
		if !bytes.Equal(out.Bytes(), target) {
			t.Errorf("sized %v: output differs", sized)
		}
	}
}
