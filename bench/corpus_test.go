package bench

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func readPair(t *testing.T, c Corpus) (old, nw []byte) {
	t.Helper()
	old, err := os.ReadFile(c.Old)
	if err != nil {
		t.Fatal(err)
	}
	nw, err = os.ReadFile(c.New)
	if err != nil {
		t.Fatal(err)
	}
	return old, nw
}

func TestGenerateDeterministic(t *testing.T) {
	for _, kind := range []string{KindRandom, KindText, KindAppend} {
		t.Run(kind, func(t *testing.T) {
			sum := func(dir string, seed uint64) [2][32]byte {
				c, err := Generate(dir, kind, seed, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				old, nw := readPair(t, c)
				if int64(len(old)) != 1<<20 {
					t.Errorf("old file has %d bytes, want %d", len(old), 1<<20)
				}
				if bytes.Equal(old, nw) {
					t.Error("old and new files are equal")
				}
				return [2][32]byte{sha256.Sum256(old), sha256.Sum256(nw)}
			}
			a := sum(t.TempDir(), 7)
			b := sum(t.TempDir(), 7)
			c := sum(t.TempDir(), 8)
			if a != b {
				t.Error("the same seed gave different files")
			}
			if a[0] == c[0] || a[1] == c[1] {
				t.Error("different seeds gave the same file")
			}
		})
	}
}

// checkEdits checks that every recorded edit is present: context around it
// is unchanged, and the edited bytes are what the kind says.
func checkEdits(t *testing.T, c Corpus, old, nw []byte) {
	t.Helper()
	var grow int64
	for _, e := range c.Edits {
		o, n, l := e.OldOffset, e.NewOffset, e.Len
		const k = 16 // context checked on each side
		before := func(oo, nn int64) bool {
			return oo >= k && nn >= k && bytes.Equal(old[oo-k:oo], nw[nn-k:nn])
		}
		switch e.Kind {
		case Insert:
			grow += l
			if !before(o, n) || (o < int64(len(old)) && !bytes.Equal(old[o:min(o+k, int64(len(old)))], nw[n+l:n+l+min(k, int64(len(old))-o)])) {
				t.Errorf("%+v: context around the insert changed", e)
			}
		case Delete:
			grow -= l
			if !before(o, n) || !bytes.Equal(old[o+l:o+l+k], nw[n:n+k]) {
				t.Errorf("%+v: context around the delete changed", e)
			}
			if bytes.Equal(old[o:o+l], nw[n:n+l]) {
				t.Errorf("%+v: the deleted bytes are still there", e)
			}
		case Overwrite:
			if !before(o, n) || !bytes.Equal(old[o+l:o+l+k], nw[n+l:n+l+k]) {
				t.Errorf("%+v: context around the overwrite changed", e)
			}
			if bytes.Equal(old[o:o+l], nw[n:n+l]) {
				t.Errorf("%+v: overwrite changed nothing", e)
			}
		case Move:
			if !bytes.Equal(old[o:o+l], nw[n:n+l]) {
				t.Errorf("%+v: moved bytes not found at the new offset", e)
			}
		default:
			t.Errorf("unknown edit kind %q", e.Kind)
		}
	}
	if want := int64(len(old)) + grow; int64(len(nw)) != want {
		t.Errorf("new file has %d bytes, want %d (old %d + inserts − deletes)", len(nw), want, len(old))
	}
}

func TestGenerateRandomEdits(t *testing.T) {
	e := Edits{Inserts: 3, Deletes: 4, Overwrites: 5, Moves: 2, MinLen: 1, MaxLen: 4096}
	c, err := GenerateRandom(t.TempDir(), 1, 2<<20, e)
	if err != nil {
		t.Fatal(err)
	}
	count := map[EditKind]int{}
	for _, ed := range c.Edits {
		count[ed.Kind]++
	}
	want := map[EditKind]int{Insert: 3, Delete: 4, Overwrite: 5, Move: 2}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d edits of kind %s, want %d", count[k], k, n)
		}
	}
	old, nw := readPair(t, c)
	checkEdits(t, c, old, nw)
}

func TestGenerateText(t *testing.T) {
	c, err := Generate(t.TempDir(), KindText, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	old, nw := readPair(t, c)
	if len(c.Edits) != 8 {
		t.Errorf("%d edits, want 8", len(c.Edits))
	}
	checkEdits(t, c, old, nw)
	for _, e := range c.Edits {
		if e.Kind == Insert || e.Kind == Move {
			if b := nw[e.NewOffset : e.NewOffset+e.Len]; b[len(b)-1] != '\n' || nw[e.NewOffset-1] != '\n' {
				t.Errorf("%+v: edit is not whole lines: %q", e, b)
			}
		}
	}
	if bytes.ContainsFunc(old, func(r rune) bool { return r != '\n' && r != '\t' && (r < ' ' || r > '~') }) {
		t.Error("text corpus holds non-printable bytes")
	}
}

func TestGenerateAppend(t *testing.T) {
	c, err := GenerateAppend(t.TempDir(), 5, 100_000, 5_000)
	if err != nil {
		t.Fatal(err)
	}
	old, nw := readPair(t, c)
	if len(old) != 100_000 || len(nw) != 105_000 || !bytes.HasPrefix(nw, old) {
		t.Errorf("append corpus: old %d bytes, new %d bytes, prefix %v; want 100000, 105000, true", len(old), len(nw), bytes.HasPrefix(nw, old))
	}
}

func TestGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	for name, f := range map[string]func() error{
		"kind": func() error { _, err := Generate(dir, "nope", 1, 1000); return err },
		"size": func() error { _, err := Generate(dir, KindRandom, 1, 0); return err },
		"too many": func() error {
			_, err := GenerateRandom(dir, 1, 1000, Edits{Inserts: 100, MinLen: 1, MaxLen: 1})
			return err
		},
		"lengths": func() error {
			_, err := GenerateRandom(dir, 1, 1000, Edits{Inserts: 1, MinLen: 5, MaxLen: 1})
			return err
		},
		"file pair": func() error {
			_, err := ParseCorpus(dir, filepath.Join(dir, "a")+","+filepath.Join(dir, "b"), 1, 1)
			return err
		},
	} {
		err := f()
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if name != "file pair" && !errors.Is(err, ErrCorpus) {
			t.Errorf("%s: %v does not wrap ErrCorpus", name, err)
		}
	}
	c, err := Generate(dir, KindAppend, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseCorpus(dir, c.Old+","+c.New, 0, 0)
	if err != nil || p.Old != c.Old || p.New != c.New {
		t.Errorf("ParseCorpus(OLD,NEW) = %+v, %v", p, err)
	}
}

func TestParseBlockSizes(t *testing.T) {
	got, err := ParseBlockSizes("1KiB-4KiB, 65536,1MiB")
	if err != nil {
		t.Fatal(err)
	}
	want := []int{1024, 2048, 4096, 65536, 1 << 20}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"1000", "x", "8", "4KiB-"} {
		if _, err := ParseBlockSizes(bad); !errors.Is(err, ErrOptions) {
			t.Errorf("ParseBlockSizes(%q) = %v, want ErrOptions", bad, err)
		}
	}
}
