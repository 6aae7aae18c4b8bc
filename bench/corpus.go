package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Corpus kinds that Generate knows.
const (
	// KindRandom is incompressible random data with scattered inserts,
	// deletes, overwrites and moves of 1 B to 16 KiB.
	KindRandom = "random"
	// KindText is text-like data (indented lines of words) with small
	// line-level edits: lines inserted, deleted, moved, and words changed.
	KindText = "text"
	// KindAppend is a growing log: the new file is the old one with a tail
	// of further lines appended (1/16 of the old size).
	KindAppend = "append"
)

// ErrCorpus is wrapped by errors about a corpus specification.
var ErrCorpus = errors.New("bad corpus")

// Corpus is a pair of files: Old, which the client holds, and New, the
// target it wants.
type Corpus struct {
	// Name names the corpus in reports, e.g. "random-seed1-64MiB".
	Name string `json:"name"`
	// Old and New are the paths of the two files.
	Old string `json:"old"`
	New string `json:"new"`
	// Edits lists the changes that turn Old into New, for generated
	// corpora; nil for a user's pair of files.
	Edits []Edit `json:"-"`
}

// EditKind is the kind of one change in a generated corpus.
type EditKind string

// Edit kinds.
const (
	Insert    EditKind = "insert"    // Len new bytes inserted
	Delete    EditKind = "delete"    // Len bytes removed
	Overwrite EditKind = "overwrite" // Len bytes replaced by as many others
	Move      EditKind = "move"      // Len bytes cut from one place, put at another
)

// Edit is one change in a generated corpus.
type Edit struct {
	Kind EditKind
	// OldOffset is where the edit applies in the old file; for a Move, the
	// start of the moved bytes in the old file.
	OldOffset int64
	// NewOffset is where the result starts in the new file: the inserted
	// or overwritten bytes, the moved bytes, or for a Delete the first
	// byte after the cut (old[OldOffset+Len] == new[NewOffset]).
	NewOffset int64
	// Len is the number of bytes inserted, deleted, overwritten or moved.
	Len int64
}

// Edits asks for a number of changes of each kind. Lengths are drawn
// log-uniformly from [MinLen, MaxLen].
type Edits struct {
	Inserts, Deletes, Overwrites, Moves int
	MinLen, MaxLen                      int64
}

// total returns the number of events the edits place in the old file: a move
// takes two places (where it is cut and where it is put).
func (e Edits) total() int { return e.Inserts + e.Deletes + e.Overwrites + 2*e.Moves }

// DefaultEdits returns the edits Generate applies for a kind and an old-file
// size: for random data one edit per 512 KiB (at least 8), 1 B to 16 KiB
// each; for text one edit per 128 KiB (at least 8), 1 B to 1 KiB each, in
// whole lines.
func DefaultEdits(kind string, size int64) Edits {
	per, maxLen := int64(512<<10), int64(16<<10)
	if kind == KindText {
		per, maxLen = 128<<10, 1<<10
	}
	n := max(8, int(size/per))
	q := n / 4
	return Edits{Inserts: q, Deletes: q, Overwrites: q, Moves: n - 3*q, MinLen: 1, MaxLen: maxLen}
}

// Generate writes a corpus of the given kind into dir: an old file of about
// size bytes and the new file derived from it, both determined by seed
// alone. It applies DefaultEdits for random and text data; for append the
// tail is size/16 bytes.
func Generate(dir string, kind string, seed uint64, size int64) (Corpus, error) {
	switch kind {
	case KindRandom:
		return GenerateRandom(dir, seed, size, DefaultEdits(kind, size))
	case KindText:
		return GenerateText(dir, seed, size, DefaultEdits(kind, size))
	case KindAppend:
		return GenerateAppend(dir, seed, size, max(1, size/16))
	}
	return Corpus{}, fmt.Errorf("corpus kind %q: want %s, %s or %s: %w", kind, KindRandom, KindText, KindAppend, ErrCorpus)
}

// ParseCorpus interprets a corpus specification as a command line gives it:
// a kind that Generate knows (the files are then generated into dir), or
// "OLD,NEW", two existing files.
func ParseCorpus(dir, spec string, seed uint64, size int64) (Corpus, error) {
	if old, nw, ok := strings.Cut(spec, ","); ok {
		return FileCorpus(old, nw)
	}
	return Generate(dir, spec, seed, size)
}

// FileCorpus returns the corpus of a user's pair of files, after checking
// that both are regular files.
func FileCorpus(old, new string) (Corpus, error) {
	for _, p := range []string{old, new} {
		fi, err := os.Stat(p)
		if err != nil {
			return Corpus{}, fmt.Errorf("corpus: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return Corpus{}, fmt.Errorf("corpus: %s is not a regular file: %w", p, ErrCorpus)
		}
	}
	return Corpus{Name: filepath.Base(old) + "→" + filepath.Base(new), Old: old, New: new}, nil
}

// GenerateRandom writes size bytes of random data as the old file and
// derives the new one by the given edits, spread evenly over the file.
func GenerateRandom(dir string, seed uint64, size int64, edits Edits) (Corpus, error) {
	c, err := newCorpus(dir, KindRandom, seed, size)
	if err != nil {
		return c, err
	}
	if err := writeFile(c.Old, func(w io.Writer) error {
		_, err := io.CopyN(w, rand.NewChaCha8(chachaSeed(seed, 0)), size)
		return err
	}); err != nil {
		return c, err
	}
	g := &editor{rng: rand.New(rand.NewChaCha8(chachaSeed(seed, 1)))}
	g.literal = func(_ EditKind, n int64, _ []byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(g.rng.Uint32())
		}
		return b
	}
	c.Edits, err = g.derive(c.Old, c.New, size, edits)
	return c, err
}

// GenerateText writes about size bytes of text-like data (indented lines of
// words, as in source code or configuration) as the old file and derives the
// new one by the given edits, each widened to whole lines: inserted lines,
// deleted lines, moved lines, and overwrites that change letters in place.
func GenerateText(dir string, seed uint64, size int64, edits Edits) (Corpus, error) {
	c, err := newCorpus(dir, KindText, seed, size)
	if err != nil {
		return c, err
	}
	tg := newTextGen(seed)
	if err := writeFile(c.Old, func(w io.Writer) error { return tg.write(w, size) }); err != nil {
		return c, err
	}
	g := &editor{rng: rand.New(rand.NewChaCha8(chachaSeed(seed, 1))), lines: true}
	g.literal = func(kind EditKind, n int64, old []byte) []byte {
		if kind == Overwrite {
			b := bytes.Clone(old)
			for i := range b {
				if b[i] >= 'a' && b[i] <= 'z' && g.rng.IntN(3) == 0 {
					b[i] = 'a' + byte((int(b[i]-'a')+1+g.rng.IntN(25))%26)
				}
			}
			return b
		}
		var buf bytes.Buffer
		for int64(buf.Len()) < n {
			tg.line(&buf, g.rng)
		}
		return buf.Bytes()
	}
	c.Edits, err = g.derive(c.Old, c.New, size, edits)
	return c, err
}

// GenerateAppend writes a log-like text file of size bytes as the old file
// and the same file with tail more bytes appended as the new one.
func GenerateAppend(dir string, seed uint64, size, tail int64) (Corpus, error) {
	c, err := newCorpus(dir, KindAppend, seed, size)
	if err != nil {
		return c, err
	}
	if tail < 0 {
		return c, fmt.Errorf("append tail %d is negative: %w", tail, ErrCorpus)
	}
	if err := writeFile(c.New, func(w io.Writer) error { return newTextGen(seed).write(w, size+tail) }); err != nil {
		return c, err
	}
	if err := writeFile(c.Old, func(w io.Writer) error {
		in, err := os.Open(c.New)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.CopyN(w, in, size)
		return err
	}); err != nil {
		return c, err
	}
	c.Edits = []Edit{{Kind: Insert, OldOffset: size, NewOffset: size, Len: tail}}
	return c, nil
}

// newCorpus names a generated corpus and makes its directory.
func newCorpus(dir, kind string, seed uint64, size int64) (Corpus, error) {
	if size <= 0 {
		return Corpus{}, fmt.Errorf("corpus size %d: must be positive: %w", size, ErrCorpus)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Corpus{}, fmt.Errorf("corpus: %w", err)
	}
	name := fmt.Sprintf("%s-seed%d-%d", kind, seed, size)
	return Corpus{
		Name: name,
		Old:  filepath.Join(dir, name+".old"),
		New:  filepath.Join(dir, name+".new"),
	}, nil
}

// chachaSeed derives the ChaCha8 key of one random stream of a corpus.
func chachaSeed(seed uint64, stream byte) [32]byte {
	var k [32]byte
	copy(k[:], "zsyncpipe bench corpus")
	binary.LittleEndian.PutUint64(k[23:], seed)
	k[31] = stream
	return k
}

// writeFile writes path through a buffer by fill.
func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("corpus: write %s: %w", path, err)
	}
	return nil
}

// event is one edit placed in the old file; a move places a cut and a paste.
type event struct {
	kind EditKind // Insert, Delete, Overwrite, or Move for the cut
	pos  int64    // offset in the old file
	n    int64    // bytes affected (for an insert, bytes inserted)
	src  int64    // for a paste (kind "paste"): where the moved bytes start
	lit  []byte   // bytes inserted or written
}

const paste EditKind = "paste"

// editor derives a new file from an old one.
type editor struct {
	rng   *rand.Rand
	lines bool // widen edits to whole lines
	// literal returns the n bytes an insert writes, or for an overwrite the
	// replacement of old.
	literal func(kind EditKind, n int64, old []byte) []byte
}

// derive places the edits in old, writes new, and returns the edits in the
// order of their place in the new file.
func (g *editor) derive(oldPath, newPath string, size int64, e Edits) ([]Edit, error) {
	if e.MinLen < 1 || e.MaxLen < e.MinLen {
		return nil, fmt.Errorf("edit lengths %d..%d: want 1 <= min <= max: %w", e.MinLen, e.MaxLen, ErrCorpus)
	}
	if e.Inserts < 0 || e.Deletes < 0 || e.Overwrites < 0 || e.Moves < 0 {
		return nil, fmt.Errorf("negative edit count: %w", ErrCorpus)
	}
	n := e.total()
	if n == 0 {
		return nil, copyFile(oldPath, newPath)
	}
	// Each event gets its own slot of the old file and stays in the middle
	// half of it, so that unchanged data separates any two edits.
	slot := size / int64(n)
	if slot < 64 {
		return nil, fmt.Errorf("%d edits do not fit in %d bytes (want 64 bytes each): %w", n, size, ErrCorpus)
	}
	kinds := make([]EditKind, 0, n)
	for _, k := range []struct {
		kind  EditKind
		count int
	}{{Insert, e.Inserts}, {Delete, e.Deletes}, {Overwrite, e.Overwrites}, {Move, e.Moves}, {paste, e.Moves}} {
		for range k.count {
			kinds = append(kinds, k.kind)
		}
	}
	g.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })

	old, err := os.Open(oldPath)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer old.Close()
	events := make([]event, n)
	var cuts, pastes []int
	for i, k := range kinds {
		maxLen := min(e.MaxLen, slot/4)
		minLen := min(e.MinLen, maxLen)
		l := int64(math.Round(math.Exp(math.Log(float64(minLen)) + g.rng.Float64()*(math.Log(float64(maxLen))-math.Log(float64(minLen))))))
		l = min(max(l, minLen), maxLen)
		start := int64(i)*slot + slot/4 + g.rng.Int64N(slot/4)
		ev := event{kind: k, pos: start, n: l}
		if g.lines {
			// Start at a line start; cover whole lines up to the one
			// holding the last byte asked for.
			ev.pos = lineStart(old, start, int64(i)*slot+slot/2)
			if k != Insert && k != paste {
				ev.n = max(1, lineStart(old, ev.pos+l-1, int64(i)*slot+3*slot/4)-ev.pos)
			}
		}
		switch k {
		case Insert:
			ev.lit = g.literal(k, ev.n, nil)
			ev.n = int64(len(ev.lit))
		case Overwrite:
			seg := make([]byte, ev.n)
			if _, err := old.ReadAt(seg, ev.pos); err != nil {
				return nil, fmt.Errorf("corpus: %w", err)
			}
			ev.lit = g.literal(k, ev.n, seg)
			if bytes.Equal(ev.lit, seg) {
				ev.lit[0] ^= 1 // an overwrite must change something
			}
		case Move:
			cuts = append(cuts, i)
		case paste:
			pastes = append(pastes, i)
		}
		events[i] = ev
	}
	for j := range cuts {
		events[pastes[j]].src = events[cuts[j]].pos
		events[pastes[j]].n = events[cuts[j]].n
	}

	var out []Edit
	err = writeFile(newPath, func(w io.Writer) error {
		var cursor, at int64 // offsets in old and new
		copyOld := func(off, n int64) error {
			_, err := io.Copy(w, io.NewSectionReader(old, off, n))
			at += n
			return err
		}
		for _, ev := range events {
			if err := copyOld(cursor, ev.pos-cursor); err != nil {
				return err
			}
			cursor = ev.pos
			switch ev.kind {
			case Insert, Overwrite:
				out = append(out, Edit{Kind: ev.kind, OldOffset: ev.pos, NewOffset: at, Len: ev.n})
				if _, err := w.Write(ev.lit); err != nil {
					return err
				}
				at += ev.n
				if ev.kind == Overwrite {
					cursor += ev.n
				}
			case Delete:
				out = append(out, Edit{Kind: Delete, OldOffset: ev.pos, NewOffset: at, Len: ev.n})
				cursor += ev.n
			case Move:
				cursor += ev.n
			case paste:
				out = append(out, Edit{Kind: Move, OldOffset: ev.src, NewOffset: at, Len: ev.n})
				if err := copyOld(ev.src, ev.n); err != nil {
					return err
				}
			}
		}
		return copyOld(cursor, size-cursor)
	})
	return out, err
}

// lineStart returns the offset after the first newline at or after off and
// before limit, or off when there is none.
func lineStart(r io.ReaderAt, off, limit int64) int64 {
	if limit <= off {
		return off
	}
	buf := make([]byte, min(limit-off, 4096))
	n, _ := r.ReadAt(buf, off)
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
		return off + int64(i) + 1
	}
	return off
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	defer in.Close()
	return writeFile(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// textGen writes text-like lines from a vocabulary drawn from the seed.
type textGen struct {
	rng   *rand.Rand
	vocab []string
}

func newTextGen(seed uint64) *textGen {
	rng := rand.New(rand.NewChaCha8(chachaSeed(seed, 2)))
	vocab := make([]string, 4096)
	for i := range vocab {
		b := make([]byte, 2+rng.IntN(3)+rng.IntN(8))
		for j := range b {
			b[j] = 'a' + byte(rng.IntN(26))
		}
		vocab[i] = string(b)
	}
	return &textGen{rng: rng, vocab: vocab}
}

// write writes exactly n bytes of lines (the last one may be cut short).
func (t *textGen) write(w io.Writer, n int64) error {
	var buf bytes.Buffer
	for n > 0 {
		buf.Reset()
		for buf.Len() < 64<<10 {
			t.line(&buf, t.rng)
		}
		b := buf.Bytes()[:min(int64(buf.Len()), n)]
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}

// line appends one line: an indent, 0 to 11 words with the occasional
// punctuation and number, and a newline. Frequent words are drawn more
// often than rare ones, as in real text.
func (t *textGen) line(buf *bytes.Buffer, rng *rand.Rand) {
	for range rng.IntN(4) {
		buf.WriteString("\t")
	}
	words := rng.IntN(12)
	for i := range words {
		if i > 0 {
			buf.WriteByte(' ')
		}
		// Square the uniform draw: low indices (frequent words) dominate.
		u := rng.Float64()
		buf.WriteString(t.vocab[int(u*u*float64(len(t.vocab)))])
		switch rng.IntN(16) {
		case 0:
			buf.WriteString(",")
		case 1:
			fmt.Fprintf(buf, "(%d)", rng.IntN(1000))
		case 2:
			buf.WriteString(" =")
		}
	}
	buf.WriteByte('\n')
}
