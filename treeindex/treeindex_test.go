package treeindex

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/relpath"
)

func file(p string, data string) Entry {
	s := sha256.Sum256([]byte(data))
	return Entry{Path: p, Type: File, Size: int64(len(data)), Mode: 0o644, MTime: time.Unix(1700000000, 123456789), SHA256: s[:]}
}

func dir(p string) Entry {
	return Entry{Path: p, Type: Directory, Mode: 0o755, MTime: time.Unix(1700000000, 0)}
}

func sample() []Entry {
	big := file("a/big.bin", "pretend this is large")
	big.Size = 1 << 30
	big.Control = ControlPath("a/big.bin", false)
	big.Inode = 1234567
	tiny := file("a/tiny", "hi\n")
	tiny.Data = []byte("hi\n")
	exe := file("a b/run", "#!/bin/sh\n")
	exe.Mode = 0o755 | fs.ModeSetuid
	empty := file("a-b", "")
	empty.Data = []byte{}
	beside := file("c/x.iso", "iso")
	beside.Control = ControlPath("c/x.iso", true)
	return []Entry{
		dir("a"), big, tiny,
		{Path: "a/up", Type: Symlink, Mode: 0o777, MTime: time.Unix(5, 0), Target: "../c/x.iso"},
		dir("a b"), exe, empty,
		dir("c"), beside,
		dir("é"), file("é/ü", "unicode"),
	}
}

func write(t *testing.T, es []Entry, opts WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	x := &Index{Header: Header{Generation: 7, Small: 4096}, Entries: es}
	if err := x.Write(&buf, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, opts := range []WriterOptions{{}, {Uncompressed: true}} {
		es := sample()
		b := write(t, es, opts)
		x, err := ReadAll(bytes.NewReader(b), ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if x.Header.Generation != 7 || x.Header.Small != 4096 || x.Header.Version != Version || x.Header.Created.IsZero() {
			t.Errorf("header %+v", x.Header)
		}
		if len(x.Entries) != len(es) {
			t.Fatalf("%d entries, want %d", len(x.Entries), len(es))
		}
		for i := range es {
			g, w := x.Entries[i], es[i]
			if g.Path != w.Path || g.Type != w.Type || g.Size != w.Size || g.Mode != w.Mode || !g.MTime.Equal(w.MTime) ||
				!bytes.Equal(g.SHA256, w.SHA256) || g.Control != w.Control || !bytes.Equal(g.Data, w.Data) ||
				(g.Data == nil) != (w.Data == nil) || g.Target != w.Target || g.Inode != w.Inode {
				t.Errorf("entry %d: got %+v, want %+v", i, g, w)
			}
		}
		if e, ok := x.Lookup("c/x.iso"); !ok || e.Control != "c/x.iso.zsync" {
			t.Errorf("Lookup(c/x.iso) = %v, %v", e, ok)
		}
		if _, ok := x.Lookup("c/y"); ok {
			t.Error("Lookup(c/y) found an entry")
		}
		// The content hash depends on the entries only.
		b2 := write(t, sample(), opts)
		y, err := ReadAll(bytes.NewReader(b2), ReaderOptions{})
		if err != nil || !bytes.Equal(x.Sum, y.Sum) || len(x.Sum) != 32 {
			t.Errorf("sums %x, %x, %v", x.Sum, y.Sum, err)
		}
		es[1].Size++
		z, _ := ReadAll(bytes.NewReader(write(t, es, opts)), ReaderOptions{})
		if bytes.Equal(z.Sum, x.Sum) {
			t.Error("content hash did not change with an entry")
		}
	}
}

func TestLinkInside(t *testing.T) {
	for target, want := range map[string]bool{"../c/x": true, "x": true, "../../x": false, "/etc/passwd": false, "../..": false, "./../": true} {
		e := Entry{Path: "a/l", Type: Symlink, Target: target}
		if got := e.LinkInside(); got != want {
			t.Errorf("LinkInside(%q) = %v, want %v", target, got, want)
		}
	}
}

// TestCompareIsWalkOrder checks that Compare is the order of comparing
// paths element by element, on random paths.
func TestCompareIsWalkOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alpha := []byte("ab-./ _~z")
	rnd := func() string {
		for {
			b := make([]byte, 1+r.IntN(8))
			for i := range b {
				b[i] = alpha[r.IntN(len(alpha))]
			}
			if relpath.Check(string(b)) == nil {
				return string(b)
			}
		}
	}
	for range 20000 {
		a, b := rnd(), rnd()
		want := slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
		if got := Compare(a, b); got != want {
			t.Fatalf("Compare(%q, %q) = %d, want %d", a, b, got, want)
		}
	}
}

// rawIndex builds an uncompressed index by hand, with a correct trailer
// unless trailer is given.
func rawIndex(lines []string, trailer string) string {
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l+"\n")
	}
	if trailer == "" {
		trailer = fmt.Sprintf(`{"end":{"count":%d,"sha256":"%x"}}`, len(lines), h.Sum(nil))
	}
	return `{"zsyncpipe-tree":1,"generation":1}` + "\n" + strings.Join(append(lines, trailer), "\n") + "\n"
}

const hash0 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func fileLine(p string) string {
	return fmt.Sprintf(`{"path":%q,"type":"file","mode":420,"sha256":"%s"}`, p, hash0)
}

func TestHostile(t *testing.T) {
	good := []string{`{"path":"d","type":"dir","mode":493}`, fileLine("d/f")}
	if _, err := ReadAll(strings.NewReader(rawIndex(good, "")), ReaderOptions{}); err != nil {
		t.Fatalf("the base case fails: %v", err)
	}
	cases := map[string]string{
		"dotdot":         rawIndex([]string{fileLine("../etc/passwd")}, ""),
		"dotdot inside":  rawIndex([]string{`{"path":"d","type":"dir"}`, fileLine("d/../../x")}, ""),
		"absolute":       rawIndex([]string{fileLine("/etc/passwd")}, ""),
		"NUL":            rawIndex([]string{fileLine("a\x00b")}, ""),
		"control char":   rawIndex([]string{fileLine("a\nb")}, ""),
		"backslash":      rawIndex([]string{fileLine(`..\x`)}, ""),
		"duplicate":      rawIndex([]string{fileLine("f"), fileLine("f")}, ""),
		"dup file dir":   rawIndex([]string{fileLine("f"), `{"path":"f","type":"dir"}`}, ""),
		"out of order":   rawIndex([]string{fileLine("b"), fileLine("a")}, ""),
		"no parent":      rawIndex([]string{fileLine("d/f")}, ""),
		"under a file":   rawIndex([]string{fileLine("d"), fileLine("d/f")}, ""),
		"under a link":   rawIndex([]string{`{"path":"d","type":"symlink","target":"/etc"}`, fileLine("d/passwd")}, ""),
		"own dir":        rawIndex([]string{`{"path":".zsyncpipe","type":"dir"}`}, ""),
		"unknown type":   rawIndex([]string{`{"path":"x","type":"fifo"}`}, ""),
		"no hash":        rawIndex([]string{`{"path":"x","type":"file"}`}, ""),
		"negative size":  rawIndex([]string{`{"path":"x","type":"file","size":-1,"sha256":"` + hash0 + `"}`}, ""),
		"bad mode":       rawIndex([]string{`{"path":"x","type":"file","mode":99999,"sha256":"` + hash0 + `"}`}, ""),
		"data size":      rawIndex([]string{`{"path":"x","type":"file","size":3,"data":"aGk=","sha256":"` + hash0 + `"}`}, ""),
		"control escape": rawIndex([]string{`{"path":"x","type":"file","control":"../x.zsync","sha256":"` + hash0 + `"}`}, ""),
		"control else":   rawIndex([]string{`{"path":"x","type":"file","control":"y/x.zsync","sha256":"` + hash0 + `"}`}, ""),
		"empty link":     rawIndex([]string{`{"path":"x","type":"symlink"}`}, ""),
		"truncated":      func() string { s := rawIndex(good, ""); return s[:strings.Index(s, `{"end"`)] }(),
		"no trailer":     `{"zsyncpipe-tree":1}` + "\n" + strings.Join(good, "\n") + "\n",
		"wrong count":    rawIndex(good, `{"end":{"count":3,"sha256":"00"}}`),
		"wrong hash":     rawIndex(good, `{"end":{"count":2,"sha256":"`+hash0+`"}}`),
		"after trailer":  rawIndex(good, "") + fileLine("z") + "\n",
		"not json":       rawIndex([]string{"path=x"}, ""),
		"no header":      strings.Join(good, "\n"),
		"empty":          "",
		"long line":      rawIndex([]string{fileLine(strings.Repeat("a", maxLine))}, ""),
		"garbage gzip":   "\x1f\x8b\x08\x00garbage",
	}
	for name, idx := range cases {
		_, err := ReadAll(strings.NewReader(idx), ReaderOptions{})
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
	_, err := ReadAll(strings.NewReader(`{"zsyncpipe-tree":2}`+"\n"), ReaderOptions{})
	if !errors.Is(err, ErrVersion) {
		t.Errorf("version 2: err = %v, want ErrVersion", err)
	}
	_, err = ReadAll(strings.NewReader(rawIndex([]string{fileLine("../x")}, "")), ReaderOptions{})
	if !errors.Is(err, relpath.ErrUnsafe) {
		t.Errorf("unsafe path: err = %v, want relpath.ErrUnsafe too", err)
	}
}

// TestHugeCount streams an index of many entries without holding them and
// shows that MaxEntries bounds what a reader accepts.
func TestHugeCount(t *testing.T) {
	const n = 30000
	pr, pw := io.Pipe()
	go func() {
		w, err := NewWriter(pw, Header{}, WriterOptions{})
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		e := file("", "")
		for i := range n {
			e.Path = fmt.Sprintf("f%07d", i)
			if err := w.Add(e); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(w.Close())
	}()
	r, err := NewReader(pr, ReaderOptions{MaxEntries: n - 1})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for {
		_, err := r.Next()
		if err != nil {
			if !errors.Is(err, ErrFormat) || count != n-1 {
				t.Fatalf("after %d entries: %v, want ErrFormat after %d", count, err, n-1)
			}
			break
		}
		count++
	}
	pr.Close()
}

func TestWriterRefuses(t *testing.T) {
	w, err := NewWriter(io.Discard, Header{}, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(file("b", "")); err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{file("a", ""), file("b", ""), file("../x", ""), file("x/y", ""), {Path: "q", Type: Symlink}} {
		if err := w.Add(e); !errors.Is(err, ErrFormat) {
			t.Errorf("Add(%q) = %v, want ErrFormat", e.Path, err)
		}
	}
	if err := w.Add(file("c", "")); err != nil {
		t.Errorf("Add after refusals: %v", err)
	}
	if err := w.Close(); err != nil || w.Count() != 2 {
		t.Errorf("Close = %v, count %d", err, w.Count())
	}
}

// TestCorruptGzip shows that a flipped bit inside the compressed stream
// never yields a different index: the read fails, or (for the few bits
// that do not matter, such as the padding after the last deflate block)
// gives the same entries.
func TestCorruptGzip(t *testing.T) {
	b := write(t, sample(), WriterOptions{Level: gzip.BestSpeed})
	orig, err := ReadAll(bytes.NewReader(b), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i := 10; i < len(b); i++ {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		x, err := ReadAll(bytes.NewReader(c), ReaderOptions{})
		if err != nil {
			failed++
			continue
		}
		if !bytes.Equal(x.Sum, orig.Sum) || len(x.Entries) != len(orig.Entries) {
			t.Fatalf("flipped byte %d: read a different index without error", i)
		}
	}
	if failed < (len(b)-10)*9/10 {
		t.Fatalf("only %d of %d corruptions detected", failed, len(b)-10)
	}
}

// TestPackRefs: a file's pack reference survives a round trip; an entry
// with an encoding this package does not know is still read (a client
// fetches that file by its path), and a reader that knows nothing of packs
// (the entryLine of before, simulated by decoding into a struct without the
// key) sees the same entry otherwise. Bad references are refused.
func TestPackRefs(t *testing.T) {
	small := file("s.txt", "some small file")
	small.Pack = &PackRef{Name: "0123456789abcdef", Offset: 42, Length: 12, Encoding: PackZstd}
	other := file("t.txt", "another")
	other.Pack = &PackRef{Name: "0123456789abcdef0123456789abcdef", Offset: 0, Length: 3, Encoding: "zstd-dict"}
	x, err := ReadAll(bytes.NewReader(write(t, []Entry{small, other}, WriterOptions{})), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Entries[0].Pack; got == nil || *got != *small.Pack {
		t.Errorf("pack %+v, want %+v", got, small.Pack)
	}
	if got := x.Entries[1].Pack; got == nil || got.Encoding != "zstd-dict" {
		t.Errorf("unknown encoding: %+v", got)
	}
	// An older reader ignores the key: the rest of the entry is the same.
	line := toLine(&small)
	old := struct {
		Path, Type, SHA256 string
		Size               int64
	}{}
	b, _ := json.Marshal(line)
	if err := json.Unmarshal(b, &old); err != nil || old.Path != "s.txt" || old.Size != small.Size {
		t.Errorf("older reader: %+v, %v", old, err)
	}

	bad := []func(e *Entry){
		func(e *Entry) { e.Pack.Name = "0123" },
		func(e *Entry) { e.Pack.Name = "0123456789ABCDEF" },
		func(e *Entry) { e.Pack.Name = "../../etc/passwd0" },
		func(e *Entry) { e.Pack.Offset = -1 },
		func(e *Entry) { e.Pack.Offset = 1 << 60 },
		func(e *Entry) { e.Pack.Length = 0 },
		func(e *Entry) { e.Pack.Length = MaxPackLength + 1 },
		func(e *Entry) { e.Pack.Encoding = "" },
		func(e *Entry) { e.Pack.Encoding = "Zstd/../" },
		func(e *Entry) { e.Pack.Encoding = PackRaw }, // raw of another length
		func(e *Entry) { e.Size = MaxPacked + 1 },
		func(e *Entry) { e.Data = []byte("some small file") },
	}
	for i, f := range bad {
		e := small
		p := *small.Pack
		e.Pack = &p
		f(&e)
		if err := e.Check(); !errors.Is(err, ErrFormat) {
			t.Errorf("bad reference %d (%+v): %v", i, e.Pack, err)
		}
	}
	d := dir("d")
	d.Pack = small.Pack
	if err := d.Check(); !errors.Is(err, ErrFormat) {
		t.Errorf("directory with a pack: %v", err)
	}
}

// TestPackRefsShortened: a reference leaves out the name of the previous
// reference's pack, the offset that follows the pack's previous record and
// the encoding zstd; the reader restores them, and refuses a reference
// that leaves out what nothing before it gives.
func TestPackRefsShortened(t *testing.T) {
	const a, b = "0123456789abcdef", "fedcba9876543210"
	var es []Entry
	refs := []PackRef{{a, 0, 10, PackZstd}, {a, 10, 5, PackZstd}, {b, 0, 7, PackRaw}, {a, 15, 3, PackZstd}, {a, 40, 3, PackZstd}}
	for i, r := range refs {
		e := file(fmt.Sprintf("f%d", i), strings.Repeat("x", int(r.Length)))
		r := r
		e.Pack = &r
		es = append(es, e)
	}
	raw := write(t, es, WriterOptions{Uncompressed: true})
	lines := strings.Split(string(raw), "\n")
	for i, want := range []string{`"pack":{"name":"` + a + `","off":0,"len":10}`, `"pack":{"len":5}`, `"pack":{"name":"` + b + `","off":0,"len":7,"enc":"raw"}`,
		`"pack":{"name":"` + a + `","len":3}`, `"pack":{"off":40,"len":3}`} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("line %d: %s, want %s", i+1, lines[i+1], want)
		}
	}
	x, err := ReadAll(bytes.NewReader(raw), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range refs {
		if got := x.Entries[i].Pack; got == nil || *got != refs[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got, refs[i])
		}
	}
	for _, bad := range []string{
		`{"path":"f","type":"file","size":3,"mode":420,"sha256":"%s","pack":{"off":0,"len":3}}`,            // no pack before
		`{"path":"f","type":"file","size":3,"mode":420,"sha256":"%s","pack":{"name":"` + a + `","len":3}}`, // no offset to follow
	} {
		line := fmt.Sprintf(bad, strings.Repeat("ab", 32))
		if _, err := ReadAll(strings.NewReader(rawIndex([]string{line}, "")), ReaderOptions{}); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", line, err)
		}
	}
}

// failAfter accepts n bytes, then fails every write.
type failAfter struct{ n int }

var errDisk = errors.New("disk full")

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		n := f.n
		f.n = 0
		return n, errDisk
	}
	f.n -= len(b)
	return len(b), nil
}

// TestWriteFails: Index.Write (which compresses on a goroutine of its own)
// returns the error of the writer underneath, or of an entry it refuses,
// wherever it happens, and does not hang.
func TestWriteFails(t *testing.T) {
	var es []Entry
	for i := range 20000 {
		es = append(es, Entry{Path: fmt.Sprintf("f%05d", i), Type: File, Size: int64(i), Mode: 0o644,
			SHA256: bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 16)})
	}
	for _, n := range []int{0, 10, 100 << 10} {
		x := &Index{Entries: es}
		if err := x.Write(&failAfter{n: n}, WriterOptions{}); !errors.Is(err, errDisk) {
			t.Errorf("writer failing after %d bytes: %v", n, err)
		}
	}
	bad := append([]Entry{}, es...)
	bad[15000].Path = "a" // out of order
	x := &Index{Entries: bad}
	if err := x.Write(io.Discard, WriterOptions{}); !errors.Is(err, ErrFormat) {
		t.Errorf("an entry out of order: %v", err)
	}
}

// TestControlPackRefs: a control file's pack reference survives a round
// trip; "cpack" references are shortened apart from "pack" ones (their
// own previous pack and record end, "raw" left out), so that a reader
// that predates "cpack" — which ignores the key — completes every "pack"
// reference as before. Bad references are refused.
func TestControlPackRefs(t *testing.T) {
	const a, c = "0123456789abcdef", "c0c0c0c0c0c0c0c0"
	var es []Entry
	for i := range 3 {
		e := file(fmt.Sprintf("f%d", i), strings.Repeat("x", 10))
		e.Control = ControlPath(e.Path, false)
		e.Pack = &PackRef{Name: a, Offset: int64(10 * i), Length: 10, Encoding: PackZstd}
		e.ControlPack = &PackRef{Name: c, Offset: int64(100 * i), Length: 100, Encoding: PackRaw}
		es = append(es, e)
	}
	raw := write(t, es, WriterOptions{Uncompressed: true})
	lines := strings.Split(string(raw), "\n")
	for i, want := range []string{
		`"pack":{"name":"` + a + `","off":0,"len":10},"cpack":{"name":"` + c + `","off":0,"len":100}`,
		`"pack":{"len":10},"cpack":{"len":100}`,
		`"pack":{"len":10},"cpack":{"len":100}`,
	} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("line %d: %s, want %s", i+1, lines[i+1], want)
		}
		var fast entryLine
		if !parseLine([]byte(lines[i+1]), &fast) {
			t.Errorf("line %d: not parsed by hand", i+1)
		}
	}
	x, err := ReadAll(bytes.NewReader(raw), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range es {
		if g := x.Entries[i]; g.ControlPack == nil || *g.ControlPack != *es[i].ControlPack || *g.Pack != *es[i].Pack {
			t.Errorf("entry %d: pack %+v, cpack %+v; want %+v, %+v", i, g.Pack, g.ControlPack, es[i].Pack, es[i].ControlPack)
		}
	}
	// A reader of before "cpack" (simulated: the key removed) reads the
	// same entries and "pack" references.
	old := strings.NewReplacer(`,"cpack":{"name":"`+c+`","off":0,"len":100}`, "", `,"cpack":{"len":100}`, "").Replace(string(raw))
	if old == string(raw) {
		t.Fatal("the replacer removed nothing")
	}
	var ctx packContext
	for i, l := range strings.Split(old, "\n")[1 : 1+len(es)] {
		var el entryLine
		if err := json.Unmarshal([]byte(l), &el); err != nil {
			t.Fatal(err)
		}
		p, err := ctx.complete(el.Path, el.Pack)
		if err != nil || *p != *es[i].Pack {
			t.Errorf("older reader, entry %d: %+v, %v; want %+v", i, p, err, es[i].Pack)
		}
	}

	good := es[0]
	bad := []func(e *Entry){
		func(e *Entry) { e.ControlPack.Name = "0123" },
		func(e *Entry) { e.ControlPack.Offset = -1 },
		func(e *Entry) { e.ControlPack.Length = 0 },
		func(e *Entry) { e.ControlPack.Length = MaxPackLength + 1 },
		func(e *Entry) { e.ControlPack.Encoding = "Raw/.." },
		func(e *Entry) { e.Control = "" },
	}
	for i, f := range bad {
		e := good
		p := *good.ControlPack
		e.ControlPack = &p
		f(&e)
		if err := e.Check(); !errors.Is(err, ErrFormat) {
			t.Errorf("bad control reference %d (%+v): %v", i, e.ControlPack, err)
		}
	}
	d := dir("d")
	d.ControlPack = good.ControlPack
	if err := d.Check(); !errors.Is(err, ErrFormat) {
		t.Errorf("directory with a control pack: %v", err)
	}
}

// TestSumsRefs: block sums references survive a round trip, are shortened
// apart from "pack" and "cpack" ones ("raw" left out), are parsed by hand,
// and leave the other references of a reader that ignores "sums" as they
// were. Bad references are refused.
func TestSumsRefs(t *testing.T) {
	const a, c, s = "0123456789abcdef", "c0c0c0c0c0c0c0c0", "5555555555555555"
	var es []Entry
	for i := range 3 {
		e := file(fmt.Sprintf("f%d", i), strings.Repeat("x", 10))
		e.Pack = &PackRef{Name: a, Offset: int64(10 * i), Length: 10, Encoding: PackRaw}
		if i == 1 {
			e.Control = ControlPath(e.Path, false)
			e.ControlPack = &PackRef{Name: c, Offset: 0, Length: 100, Encoding: PackRaw}
		}
		e.Sums = &PackRef{Name: s, Offset: int64(8 * i), Length: 8, Encoding: PackRaw}
		es = append(es, e)
	}
	raw := write(t, es, WriterOptions{Uncompressed: true})
	lines := strings.Split(string(raw), "\n")
	for i, want := range []string{
		`"pack":{"name":"` + a + `","off":0,"len":10,"enc":"raw"},"sums":{"name":"` + s + `","off":0,"len":8}`,
		`"pack":{"len":10,"enc":"raw"},"cpack":{"name":"` + c + `","off":0,"len":100},"sums":{"len":8}`,
		`"pack":{"len":10,"enc":"raw"},"sums":{"len":8}`,
	} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("line %d: %s, want %s", i+1, lines[i+1], want)
		}
		var fast entryLine
		if !parseLine([]byte(lines[i+1]), &fast) || fast.Sums == nil {
			t.Errorf("line %d: not parsed by hand", i+1)
		}
	}
	x, err := ReadAll(bytes.NewReader(raw), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range es {
		if g := x.Entries[i]; g.Sums == nil || *g.Sums != *es[i].Sums || *g.Pack != *es[i].Pack {
			t.Errorf("entry %d: pack %+v, sums %+v; want %+v, %+v", i, g.Pack, g.Sums, es[i].Pack, es[i].Sums)
		}
	}
	if g := x.Entries[1].ControlPack; g == nil || *g != *es[1].ControlPack {
		t.Errorf("cpack %+v, want %+v", g, es[1].ControlPack)
	}
	good := es[0]
	bad := []func(e *Entry){
		func(e *Entry) { e.Sums.Name = "0123" },
		func(e *Entry) { e.Sums.Offset = -1 },
		func(e *Entry) { e.Sums.Length = 0 },
		func(e *Entry) { e.Sums.Encoding = "Raw/.." },
		func(e *Entry) { e.Size, e.Pack = 0, nil },
		func(e *Entry) { e.Data, e.Pack = []byte(strings.Repeat("x", 10)), nil },
	}
	for i, f := range bad {
		e := good
		p := *good.Sums
		e.Sums = &p
		f(&e)
		if err := e.Check(); !errors.Is(err, ErrFormat) {
			t.Errorf("bad sums reference %d (%+v): %v", i, e.Sums, err)
		}
	}
	d := dir("d")
	d.Sums = good.Sums
	if err := d.Check(); !errors.Is(err, ErrFormat) {
		t.Errorf("directory with block sums: %v", err)
	}
}

// TestFrames: frames survive a round trip, are parsed by hand, and bad
// ones are refused.
func TestFrames(t *testing.T) {
	e := file("big", strings.Repeat("x", 3*MinFrameSize+5))
	e.Control = ControlPath(e.Path, false)
	e.Frames = &Frames{Name: "0123456789abcdef", Encoding: PackS2, FrameSize: MinFrameSize, Lengths: []uint32{100, MinFrameSize, 300, 5}}
	raw := write(t, []Entry{e}, WriterOptions{Uncompressed: true})
	lines := strings.Split(string(raw), "\n")
	want := `"frames":{"name":"0123456789abcdef","enc":"s2","fsz":4096,"lens":"`
	if !strings.Contains(lines[1], want) {
		t.Errorf("line %s, want %s", lines[1], want)
	}
	var fast entryLine
	if !parseLine([]byte(lines[1]), &fast) || fast.Frames == nil {
		t.Errorf("not parsed by hand: %s", lines[1])
	}
	x, err := ReadAll(bytes.NewReader(raw), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := x.Entries[0].Frames; g == nil || !reflect.DeepEqual(*g, *e.Frames) {
		t.Fatalf("frames %+v, want %+v", g, e.Frames)
	}
	bad := []func(e *Entry){
		func(e *Entry) { e.Frames.Name = "0123" },
		func(e *Entry) { e.Frames.Encoding = "" },
		func(e *Entry) { e.Frames.FrameSize = MinFrameSize / 2 },
		func(e *Entry) { e.Frames.FrameSize = MinFrameSize + 1 },
		func(e *Entry) { e.Frames.FrameSize = MaxFrameSize * 2 },
		func(e *Entry) { e.Frames.Lengths = e.Frames.Lengths[:3] },
		func(e *Entry) { e.Frames.Lengths = append(e.Frames.Lengths, 1) },
		func(e *Entry) { e.Frames.Lengths[1] = MinFrameSize + 1 },
		func(e *Entry) { e.Frames.Lengths[3] = 6 },
		func(e *Entry) { e.Frames.Lengths[0] = 0 },
		func(e *Entry) { e.Control = "" },
		func(e *Entry) {
			e.Size = (MaxFrames + 1) * MinFrameSize
			e.Frames.Lengths = make([]uint32, MaxFrames+1)
			for i := range e.Frames.Lengths {
				e.Frames.Lengths[i] = 1
			}
		},
	}
	for i, f := range bad {
		b := e
		fr := *e.Frames
		fr.Lengths = slices.Clone(fr.Lengths)
		b.Frames = &fr
		f(&b)
		if err := b.Check(); !errors.Is(err, ErrFormat) {
			t.Errorf("bad frames %d (%+v): %v", i, b.Frames, err)
		}
	}
	d := dir("d")
	d.Frames = e.Frames
	if err := d.Check(); !errors.Is(err, ErrFormat) {
		t.Errorf("directory with frames: %v", err)
	}
	// Lengths that are not varints in base64 are refused when read.
	for _, lens := range []string{"!!", "gICAgICAgICAAQ==", "/////w8="} {
		l := strings.Replace(lines[1], `"lens":"`, `"lens":"`+lens+`","x":"`, 1)
		r := strings.Join(append([]string{lines[0], l}, lines[2:]...), "\n")
		if _, err := ReadAll(strings.NewReader(r), ReaderOptions{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "frames") {
			t.Errorf("lengths %q: %v", lens, err)
		}
	}
}
