package indexer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Growing files (Options.AppendOnly, docs/trees.md "Growing files").
//
// With AppendOnly, every control file the indexer writes gets a sidecar
// in growDir: the file's full block records and whole-file hash states
// (stages.ChecksumState), tied to the entry they were made with. When the
// file is next found larger, with the same inode and an mtime not
// before the entry's, the sidecar matches the previous entry, the last
// whole read is younger than Options.Rehash and sampled blocks of the
// old content still match their records, only the old last partial block
// and what follows it are read.

// growDir holds the sidecars, relative to the tree's root. It is inside
// the publisher's directory, below the one name there that no path of the
// tree can take (the tree's own top-level .zsyncpipe is never published),
// so it never clashes with a control file or its directory.
const growDir = treeindex.Dir + "/" + treeindex.Dir + "/grow"

// growVersion is the version of the sidecar format.
const growVersion = 1

// growSamples is how many blocks of the old content, besides its first and
// last, are read again to check that the prefix is unchanged.
const growSamples = 4

// growState is the content of a sidecar (gob, then the SHA-256 of the gob
// bytes).
type growState struct {
	Version int
	// The entry it was made with.
	Path   string
	Inode  uint64
	Size   int64
	MTime  int64
	SHA256 []byte
	Legacy bool
	// Verified is when the whole file was last read (Unix nanoseconds).
	Verified int64
	// Sums are the block records and hash states.
	Sums stages.ChecksumState
	// EntryHash is, for legacy control files (whose own whole-file hash is
	// SHA-1), the state of the entry's SHA-256 after Sums.Complete() bytes.
	EntryHash []byte
}

// growPath returns the path of the sidecar of the file at rel.
func (px *pass) growPath(rel string) string {
	sum := sha256.Sum256([]byte(rel))
	return filepath.Join(px.dir, filepath.FromSlash(growDir), hex.EncodeToString(sum[:20]))
}

// readGrow reads the sidecar of the file at rel; nil if there is none or
// it is unusable.
func (px *pass) readGrow(rel string) *growState {
	b, err := osfile.ReadRegular(context.Background(), px.growPath(rel))
	if err != nil || len(b) < sha256.Size {
		return nil
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return nil
	}
	var g growState
	if gob.NewDecoder(bytes.NewReader(body)).Decode(&g) != nil || g.Version != growVersion || g.Path != rel {
		return nil
	}
	return &g
}

// writeGrow writes the sidecar of an entry.
func (px *pass) writeGrow(g *growState) error {
	p := px.growPath(g.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(g); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	// No flush of its own: a sidecar that a power failure damaged fails
	// its checksum or the match with the entry, and is not used.
	_, err := atomicfile.WriteOptions(p, atomicfile.Options{Suffix: tmpSuffix, NoSync: true},
		func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err })
	return err
}

// growth decides whether the file at rel, open as f and described by e,
// extends its previous entry's content: it returns the sidecar to resume
// from, or nil to read the whole file. It reads a few blocks of the old
// content (counted in px.hashedBytes).
func (px *pass) growth(f io.ReaderAt, e *treeindex.Entry, want string) *growState {
	old, ok := px.prev[e.Path]
	if !ok || !px.reuse || old.Type != treeindex.File || old.Control != want || e.Inode == 0 || old.Inode != e.Inode ||
		old.Size >= e.Size || e.MTime.Before(old.MTime) {
		return nil
	}
	g := px.readGrow(e.Path)
	bs := px.opts.Blocksize
	if bs == 0 {
		bs = control.DefaultBlocksize(e.Size)
	}
	alg := px.hasher.Algorithm()
	switch {
	case g == nil, g.Inode != old.Inode, g.Size != old.Size, g.MTime != old.MTime.UnixNano(), !bytes.Equal(g.SHA256, old.SHA256),
		g.Legacy != px.opts.Legacy, g.Legacy && g.EntryHash == nil, g.Sums.Length != old.Size,
		g.Sums.Blocksize != bs, g.Sums.Algorithm != alg, // the block size changes at 100 MB
		time.Since(time.Unix(0, g.Verified)) >= px.opts.rehash():
		return nil
	}
	nb := (g.Sums.Length + int64(bs) - 1) / int64(bs)
	if nb == 0 || int64(len(g.Sums.Rsum)) != nb || int64(len(g.Sums.Strong)) != nb*int64(alg.Size()) {
		return nil
	}
	// Check the old content where a rewrite would most likely show: its
	// first block, its last complete one, its last partial one, and a few
	// others at random.
	check := []int64{0, nb - 1}
	if g.Sums.Length%int64(bs) != 0 && nb >= 2 {
		check = append(check, nb-2)
	}
	for range growSamples {
		check = append(check, rand.Int64N(nb))
	}
	slices.Sort(check)
	check = slices.Compact(check)
	blocks := make([][]byte, len(check))
	for i, b := range check {
		blocks[i] = make([]byte, bs) // the last one zero-padded, as it was summed
		n := min(int64(bs), g.Sums.Length-b*int64(bs))
		if _, err := f.ReadAt(blocks[i][:n], b*int64(bs)); err != nil {
			return nil
		}
		px.hashedBytes.Add(n)
	}
	sums := make([]byte, len(blocks)*alg.Size())
	px.hasher.SumBlocks(sums, alg.Size(), blocks)
	for i, b := range check {
		if rollsum.Block(blocks[i]).Packed() != g.Sums.Rsum[b] ||
			!bytes.Equal(sums[i*alg.Size():(i+1)*alg.Size()], g.Sums.Strong[b*int64(alg.Size()):(b+1)*int64(alg.Size())]) {
			return nil // rewritten, not appended to
		}
	}
	return g
}

// growPlan is how the control file of a file indexed with AppendOnly is
// made: from which sidecar, and what the next one holds.
type growPlan struct {
	from *growState // the sidecar resumed from, or nil: the file is read whole
	next *growState // the sidecar to write once the control file is in place
	cut  *cutHash   // legacy: the entry's SHA-256, cut at the complete blocks
}

// planGrowth sets up mo (and, for legacy control files, h: the entry's
// SHA-256) to continue from the file's sidecar when growth allows, and to
// collect the next sidecar. f is positioned where reading starts.
func (px *pass) planGrowth(f *os.File, e *treeindex.Entry, want string, mo *zsyncpipe.MakeOptions, h hash.Hash) (*growPlan, error) {
	g := &growPlan{next: &growState{Version: growVersion, Path: e.Path, Inode: e.Inode, Size: e.Size,
		MTime: e.MTime.UnixNano(), Legacy: px.opts.Legacy, Verified: time.Now().UnixNano()}}
	mo.State = func(s *stages.ChecksumState) { g.next.Sums = *s }
	if g.from = px.growth(f, e, want); g.from != nil {
		g.next.Verified = g.from.Verified
		mo.Resume, mo.Prefix = &g.from.Sums, countReaderAt{f, &px.hashedBytes}
		if _, err := f.Seek(g.from.Sums.Complete(), io.SeekStart); err != nil {
			return nil, err
		}
		if px.opts.Legacy {
			if err := stages.RestoreHashState(h, g.from.EntryHash); err != nil {
				return nil, fmt.Errorf("%s: %w", e.Path, err)
			}
		}
	}
	if px.opts.Legacy {
		bs := int64(px.opts.Blocksize)
		if bs == 0 {
			bs = int64(control.DefaultBlocksize(e.Size))
		}
		g.cut = &cutHash{h: h, at: e.Size - e.Size%bs}
		if g.from != nil {
			g.cut.n = g.from.Sums.Complete()
		}
	}
	return g, nil
}

// finishGrowth writes the sidecar of a file whose control file (of entry
// e) is in place.
func (px *pass) finishGrowth(g *growPlan, e *treeindex.Entry) {
	if g.from != nil {
		px.extended.Add(1)
	}
	n := g.next
	if g.cut != nil {
		n.EntryHash = g.cut.state
	}
	if n.Sums.Length != e.Size || (px.opts.Legacy && n.EntryHash == nil) {
		return // no state collected (cannot happen with crypto/sha256)
	}
	n.SHA256 = e.SHA256
	if err := px.writeGrow(n); err != nil {
		// Without it the next growth is read whole: not fatal.
		px.warn(fmt.Errorf("index: state of %s for its growth: %w", e.Path, err))
	}
}

// removeGrow removes the sidecars of files that no longer have a control
// file (all of them without AppendOnly).
func (px *pass) removeGrow(cur []treeindex.Entry) {
	dir := filepath.Join(px.dir, filepath.FromSlash(growDir))
	names, err := readDirNames(dir)
	if err != nil {
		return
	}
	if !px.opts.AppendOnly {
		os.RemoveAll(dir)
		os.Remove(filepath.Dir(dir)) // unless it holds the record of retired packs
		return
	}
	live := make(map[string]bool, len(cur))
	for i := range cur {
		if cur[i].Control != "" {
			live[filepath.Base(px.growPath(cur[i].Path))] = true
		}
	}
	for _, n := range names {
		if !live[n] && !isTemp(n) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				px.warn(fmt.Errorf("index: %w", err))
			}
		}
	}
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countReaderAt counts the bytes read through it.
type countReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c countReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// cutHash writes to h and saves h's state once at bytes have been
// written: the entry's SHA-256 state at the end of the complete blocks,
// for legacy sidecars.
type cutHash struct {
	h     hash.Hash
	n, at int64
	state []byte
}

func (c *cutHash) Write(p []byte) (int, error) {
	total := len(p)
	if c.state == nil && c.n+int64(len(p)) >= c.at {
		k := c.at - c.n
		c.h.Write(p[:k])
		c.n += k
		p = p[k:]
		c.state, _ = stages.HashState(c.h)
	}
	c.h.Write(p)
	c.n += int64(len(p))
	return total, nil
}
