package indexer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/strong"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// ReadIndex reads the index of the tree at dir; it returns nil and an
// error wrapping fs.ErrNotExist when there is none.
func ReadIndex(dir string) (*treeindex.Index, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(treeindex.IndexPath)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := treeindex.ReadAll(f, treeindex.ReaderOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return x, nil
}

// pass is one run of Index.
type pass struct {
	dir  string
	opts Options
	prev map[string]*treeindex.Entry // read-only during the pipeline
	// root reads the tree's files, never outside it.
	root *os.Root
	// reuse allows taking unchanged files' entries from prev.
	reuse bool
	// hasher computes the block hashes of every control file of the pass.
	hasher *simd.Hasher

	hashed, controls, unsettled, skipped, extended atomic.Int64
	// batch: new control files are flushed by one syncfs before the index
	// is written (Linux, unless NoSync); batched counts them.
	batch   bool
	batched atomic.Int64
	// framesWritten and framesBytes count the files of frames written.
	framesWritten, framesBytes atomic.Int64
	// dirs are the directories of control files known to exist.
	dirs        sync.Map
	hashedBytes atomic.Int64
	// enc compresses the contents of small files for their packs;
	// packSizes caches the sizes of packs (-1: missing), by name.
	enc          *zstd.Encoder
	packSizes    sync.Map
	packsRemoved int
}

// Batch limits of the walk (see index).
const (
	batchItems = 64
	batchBytes = 1 << 20
)

// slot is the hash stage's result for one item.
type slot struct {
	e    treeindex.Entry
	skip bool
	// rec is the file's pack record, encoded as enc, when it was read in
	// this pass and goes into a pack.
	rec []byte
	enc string
	// ctl is the file's control file, when it goes into a control pack
	// (written by hash, or read by readControl).
	ctl []byte
	// sums are the file's block sums, when they go into a sums pack
	// (written by hash; see wantsSums).
	sums []byte
}

// Index brings the index and the control files of the tree at dir up to
// date in one incremental pass and returns what it did. It is safe to run
// again after any failure or a kill: what a client can see is always a
// complete index and the complete control files it names.
//
// Memory: Index holds the previous and the new entries (a few hundred
// bytes per entry, see docs/trees.md), never file contents beyond the
// buffers of the files being read.
func Index(ctx context.Context, dir string, opts Options) (*Result, error) {
	res, _, err := index(ctx, dir, opts, nil)
	return res, err
}

// index is Index with the previous index already in memory (Watch keeps
// it); nil reads it from dir. It returns the index now in place.
func index(ctx context.Context, dir string, opts Options, prev *treeindex.Index) (*Result, *treeindex.Index, error) {
	start := time.Now()
	if opts.Walk == nil {
		opts.Walk = WalkDir
	}
	px := &pass{dir: dir, opts: opts, prev: map[string]*treeindex.Entry{}, batch: !opts.NoSync && osfile.HasSyncFS}
	pubDir := filepath.Join(dir, treeindex.Dir)
	// Never write through a .zsyncpipe that is a symlink: whoever can write
	// the tree could send the publisher's writes anywhere.
	if fi, err := os.Lstat(pubDir); err == nil && !fi.IsDir() {
		return nil, nil, nameError(fmt.Errorf("%s is not a directory (%v)", pubDir, fi.Mode().Type()))
	}
	if err := os.Mkdir(pubDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, nil, fmt.Errorf("index: %w", err)
	}
	removeTemps(pubDir)

	// The previous index is read while the walk starts; the stages that
	// compare with it wait for ready.
	var (
		ready   = make(chan struct{})
		loadErr error
		hdr     treeindex.Header
	)
	go func() {
		defer close(ready)
		if prev == nil {
			var err error
			prev, err = ReadIndex(dir)
			switch {
			case err == nil:
			case errors.Is(err, fs.ErrNotExist):
				prev = &treeindex.Index{}
			case errors.Is(err, treeindex.ErrFormat) || errors.Is(err, treeindex.ErrVersion):
				px.warn(fmt.Errorf("index: ignoring the previous index: %w", err))
				prev = &treeindex.Index{}
			default:
				loadErr = fmt.Errorf("index: %w", err)
				prev = &treeindex.Index{}
			}
		}
		for i := range prev.Entries {
			px.prev[prev.Entries[i].Path] = &prev.Entries[i]
		}
		hdr = treeindex.Header{Generation: prev.Header.Generation + 1, Small: opts.small(), Legacy: opts.Legacy}
		// Control files of another format or threshold are all remade.
		px.reuse = prev.Header.Small == hdr.Small && prev.Header.Legacy == hdr.Legacy
	}()
	defer func() { <-ready }()
	alg := strong.MD5
	if opts.Legacy {
		alg = strong.MD4
	}
	h, err := simd.NewHasher(alg, simd.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("index: %w", err)
	}
	defer h.Close()
	px.hasher = h
	if !opts.NoPacks {
		if px.enc, err = newPackEncoder(); err != nil {
			return nil, nil, fmt.Errorf("index: %w", err)
		}
		defer px.enc.Close()
	}
	pk := &packer{px: px, ref: contentRef}
	defer pk.abort()
	ck := &packer{px: px, ref: controlRef}
	defer ck.abort()
	sk := &packer{px: px, ref: sumsRef}
	defer sk.abort()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("index: %w", err)
	}
	defer root.Close()
	px.root = root

	res := &Result{}
	var (
		changes []Change
		cur     []treeindex.Entry
		same    = true
	)
	p := pipeline.New(pipeline.Config{})
	// Items travel in batches: one hand-off between stages per batch, not
	// per file. A batch ends at batchItems items or batchBytes of files, so
	// large files still spread over the workers.
	items := pipeline.Source(p, "walk", func(ctx context.Context, emit func([]Item) error) error {
		var (
			batch []Item
			bytes int64
		)
		err := opts.Walk(ctx, dir, func(it Item) error {
			batch = append(batch, it)
			if it.Info.Mode().IsRegular() {
				bytes += it.Info.Size()
			}
			if len(batch) < batchItems && bytes < batchBytes {
				return nil
			}
			b := batch
			batch, bytes = nil, 0
			return emit(b)
		})
		if err == nil && len(batch) > 0 {
			err = emit(batch)
		}
		return err
	})
	slots := pipeline.Map(p, "hash", items, opts.Workers, func(ctx context.Context, b []Item) ([]slot, error) {
		<-ready
		if loadErr != nil {
			return nil, loadErr
		}
		out := make([]slot, len(b))
		for i, it := range b {
			var err error
			if out[i], err = px.entry(ctx, it); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
	pipeline.Sink(p, "index", slots, func(ctx context.Context, b []slot) error {
		<-ready
		same = same && px.reuse
		for _, s := range b {
			if s.skip {
				continue
			}
			e := s.e
			if opts.OnEntry != nil {
				if err := opts.OnEntry(ctx, e); err != nil {
					return err
				}
			}
			if s.rec != nil {
				ref, err := pk.add(s.rec, s.enc, len(cur))
				if err != nil {
					return err
				}
				e.Pack = ref
			}
			if s.ctl != nil {
				ref, err := ck.add(s.ctl, treeindex.PackRaw, len(cur))
				if err != nil {
					return err
				}
				e.ControlPack = ref
			}
			if s.sums != nil {
				ref, err := sk.add(s.sums, treeindex.PackRaw, len(cur))
				if err != nil {
					return err
				}
				e.Sums = ref
			}
			same = same && len(cur) < len(prev.Entries) && equal(&prev.Entries[len(cur)], &e)
			cur = append(cur, e)
			res.Entries++
			if e.Type == treeindex.File {
				res.Files++
				res.Bytes += e.Size
			}
			if old, ok := px.prev[e.Path]; !ok {
				changes = append(changes, Change{Op: Created, Path: e.Path, Entry: e})
			} else if differs(old, &e) {
				changes = append(changes, Change{Op: Changed, Path: e.Path, Entry: e})
			}
		}
		return nil
	})
	err = p.Run(ctx)
	if se := (*pipeline.StageError)(nil); errors.As(err, &se) {
		err = se.Err // a stage's name means nothing to people
	}
	<-ready
	if err == nil {
		err = loadErr
	}
	res.Generation, res.Sum = prev.Header.Generation, prev.Sum
	same = same && px.reuse
	res.Hashed = int(px.hashed.Load())
	res.HashedBytes = px.hashedBytes.Load()
	res.Extended = int(px.extended.Load())
	res.Controls = int(px.controls.Load())
	res.Unsettled = int(px.unsettled.Load())
	res.Skipped = int(px.skipped.Load())
	res.Duration = time.Since(start)
	for _, k := range []*packer{pk, ck, sk} {
		if err == nil {
			var moved bool
			if moved, err = k.compact(cur); moved {
				same = false
			}
		}
		if err == nil {
			err = k.close(cur)
		}
	}
	res.Packed, res.Repacked, res.PackBytes = int(pk.records), int(pk.repacked), pk.bytes+ck.bytes+sk.bytes
	res.ControlsPacked = int(ck.records)
	res.SumsPacked = int(sk.records)
	res.Framed, res.FramesBytes = int(px.framesWritten.Load()), px.framesBytes.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", dir, err)
	}
	if px.batched.Load() > 0 {
		// The control files written without a flush of their own (new
		// ones, which no index names yet) reach the disk, and their
		// renames with them, before an index names them: one syncfs
		// instead of an fsync each.
		if err := osfile.SyncFS(dir); err != nil {
			return nil, nil, fmt.Errorf("index %s: %w", dir, err)
		}
	}
	if same && len(cur) == len(prev.Entries) && prev.Sum != nil {
		px.retirePacks(prev.Entries)
		res.PacksRemoved = px.packsRemoved
		return res, prev, nil // nothing to write
	}
	next := &treeindex.Index{Header: hdr, Entries: cur}
	if _, err := atomicfile.WriteOptions(filepath.Join(dir, filepath.FromSlash(treeindex.IndexPath)),
		atomicfile.Options{Suffix: tmpSuffix, NoSync: opts.NoSync},
		func(w io.Writer) error {
			return next.Write(w, treeindex.WriterOptions{Level: gzip.DefaultCompression})
		}); err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", dir, err)
	}
	res.Written, res.Generation, res.Sum = true, next.Header.Generation, next.Sum
	seen := make(map[string]*treeindex.Entry, len(cur))
	for i := range cur {
		seen[cur[i].Path] = &cur[i]
	}

	// The new index is in place: now drop what only the old one named.
	var removed []Change
	for i := range prev.Entries {
		old := &prev.Entries[i]
		now := seen[old.Path]
		if old.Control != "" && (now == nil || now.Control != old.Control) {
			px.removeControl(old.Control)
		}
		if now == nil {
			removed = append(removed, Change{Op: Removed, Path: old.Path, Entry: *old})
		}
	}
	px.removeGrow(cur)
	px.retirePacks(cur)
	res.PacksRemoved = px.packsRemoved
	changes = pairRenames(changes, removed)
	res.Changes = len(changes)
	if opts.OnChange != nil {
		for _, c := range changes {
			if err := opts.OnChange(ctx, c); err != nil {
				return res, next, fmt.Errorf("index: change of %s: %w", c.Path, &changeError{err})
			}
		}
	}
	res.Duration = time.Since(start)
	return res, next, nil
}

// equal reports whether two entries are identical.
func equal(a, b *treeindex.Entry) bool {
	return a.Path == b.Path && a.Type == b.Type && a.Size == b.Size && a.Mode == b.Mode && a.MTime.Equal(b.MTime) &&
		bytes.Equal(a.SHA256, b.SHA256) && a.Control == b.Control && bytes.Equal(a.Data, b.Data) &&
		(a.Data == nil) == (b.Data == nil) && a.Target == b.Target && a.Inode == b.Inode &&
		samePack(a.Pack, b.Pack) && samePack(a.ControlPack, b.ControlPack) && samePack(a.Sums, b.Sums) &&
		sameFrames(a.Frames, b.Frames)
}

// sameFrames reports whether two entries' frames are the same file.
func sameFrames(a, b *treeindex.Frames) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Name == b.Name && a.Encoding == b.Encoding && a.FrameSize == b.FrameSize)
}

// samePack reports whether two pack references are equal.
func samePack(a, b *treeindex.PackRef) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// openError is a file of the tree that cannot be opened (permission
// denied, or a path that now leads out of the tree): it is left out.
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// changeError marks an error returned by OnChange.
type changeError struct{ err error }

func (e *changeError) Error() string { return e.err.Error() }
func (e *changeError) Unwrap() error { return e.err }

// differs reports whether the entry changed in a way worth a Change: any
// change of a file or symlink, but for a directory only its mode or type
// (its mtime moves with every change inside it).
func differs(a, b *treeindex.Entry) bool {
	if a.Type != b.Type || a.Mode != b.Mode {
		return true
	}
	switch a.Type {
	case treeindex.File:
		return a.Size != b.Size || !a.MTime.Equal(b.MTime) || !bytes.Equal(a.SHA256, b.SHA256) || a.Control != b.Control
	case treeindex.Symlink:
		return a.Target != b.Target
	}
	return false
}

// pairRenames turns a Created file and a Removed file of the same size and
// hash into one Renamed change, and appends the other removals.
func pairRenames(changes, removed []Change) []Change {
	type key struct {
		size int64
		sum  string
	}
	gone := map[key][]int{}
	for i, r := range removed {
		if r.Entry.Type == treeindex.File {
			k := key{r.Entry.Size, string(r.Entry.SHA256)}
			gone[k] = append(gone[k], i)
		}
	}
	used := make([]bool, len(removed))
	for i, c := range changes {
		if c.Op != Created || c.Entry.Type != treeindex.File {
			continue
		}
		k := key{c.Entry.Size, string(c.Entry.SHA256)}
		if l := gone[k]; len(l) > 0 {
			changes[i].Op, changes[i].OldPath = Renamed, removed[l[0]].Path
			used[l[0]] = true
			gone[k] = l[1:]
		}
	}
	for i, r := range removed {
		if !used[i] {
			changes = append(changes, r)
		}
	}
	return changes
}

func (px *pass) warn(err error) { px.opts.warn(err) }

// entry makes the index entry of one item: from the previous index when
// the file is unchanged, else by reading it (and making its control file).
func (px *pass) entry(ctx context.Context, it Item) (slot, error) {
	mode := it.Info.Mode()
	e := treeindex.Entry{Path: it.Path, Mode: treeindex.ModeOf(mode), MTime: it.Info.ModTime()}
	full := filepath.Join(px.dir, filepath.FromSlash(it.Path))
	switch {
	case mode.IsDir():
		e.Type = treeindex.Directory
		if !px.opts.Beside && strings.HasSuffix(it.Path, treeindex.ControlSuffix) {
			// .zsyncpipe/X.zsync is both X's control file and this
			// directory's place in the mirror of the tree.
			if fi, err := os.Lstat(strings.TrimSuffix(full, treeindex.ControlSuffix)); err == nil && fi.Mode().IsRegular() && fi.Size() >= px.opts.small() {
				return slot{}, nameError(fmt.Errorf("directory %q clashes with the control file of file %q", it.Path, strings.TrimSuffix(it.Path, treeindex.ControlSuffix)))
			}
		}
		return slot{e: e}, nil
	case mode&fs.ModeSymlink != 0:
		e.Type, e.Target = treeindex.Symlink, it.Target
		if err := e.Check(); err != nil {
			return slot{}, nameError(err)
		}
		return slot{e: e}, nil
	case !mode.IsRegular():
		px.warn(fmt.Errorf("index: skipping %s: not a regular file, directory or symlink (%v)", it.Path, mode.Type()))
		return slot{skip: true}, nil
	}
	e.Type, e.Size, e.Inode = treeindex.File, it.Info.Size(), inodeOf(it.Info)
	if px.opts.Beside && strings.HasSuffix(it.Path, treeindex.ControlSuffix) {
		if fi, err := os.Lstat(strings.TrimSuffix(full, treeindex.ControlSuffix)); err == nil && fi.Mode().IsRegular() && fi.Size() >= px.opts.small() {
			return slot{skip: true}, nil // the control file of its neighbour
		}
	}
	want := ""
	if e.Size >= px.opts.small() {
		want = treeindex.ControlPath(it.Path, px.opts.Beside)
	}
	inline := want == "" && e.Size <= px.opts.inline() // files with a control file are never inlined
	// Files with a control file are packed up to packMax.
	pack := !inline && px.packable(e.Size) && (want == "" || e.Size <= px.opts.packMax())
	if old, ok := px.prev[it.Path]; ok && px.reuse && old.Type == treeindex.File && old.Size == e.Size &&
		old.MTime.Equal(e.MTime) && old.Inode == e.Inode && old.Control == want && (old.Data != nil) == inline &&
		(old.Pack != nil) == pack && px.controlExists(want) && px.packExists(old.Pack) &&
		(old.Sums != nil) == px.wantsSums(old.Size, old.Pack) && px.packExists(old.Sums) &&
		(!px.wantsFrames(want, e.Size) || px.framesExist(old.Frames)) {
		// (An entry of before block sums that should have them is read
		// again: the sums are made from the file's content.)
		e.SHA256, e.Data, e.Control, e.Pack, e.Sums = old.SHA256, old.Data, old.Control, old.Pack, old.Sums
		if px.wantsFrames(want, e.Size) {
			// (An entry of before frames keeps none until its file
			// changes: the changed files are those clients rebuild. One
			// whose file of frames is gone is read again above.)
			e.Frames = old.Frames
		}
		s := slot{e: e}
		if want != "" && !px.opts.NoPacks {
			if old.ControlPack != nil && px.packExists(old.ControlPack) {
				s.e.ControlPack = old.ControlPack
			} else {
				// An index of before control packs, or a pack gone: the
				// control file as it is goes into this pass's.
				s.ctl = px.readControl(want)
			}
		}
		return s, nil
	}
	// A future mtime (clock skew, unpacked archives) cannot tell whether the
	// file is still being written; such files are taken as they are.
	if age := time.Since(e.MTime); px.opts.Settle > 0 && age >= 0 && age < px.opts.Settle {
		return px.keepPrev(it.Path)
	}
	seen := it.Info // from the walk; a retry's Lstat is not confined to the tree
	var s slot
	if pack {
		s.enc = "-" // asks hash for the record
	}
	for try := 0; ; try++ {
		ok, err := px.hash(ctx, it.Path, seen, &e, want, inline, &s)
		seen = nil
		if oe := (*openError)(nil); errors.As(err, &oe) {
			px.skipped.Add(1)
			px.warn(fmt.Errorf("skipping %s: %w", it.Path, err))
			return slot{skip: true}, nil
		}
		if err != nil {
			return slot{}, err
		}
		if ok {
			s.e = e
			return s, nil
		}
		if try == 2 || px.opts.Settle > 0 {
			px.warn(fmt.Errorf("index: %s changes while it is read; leaving it for later", it.Path))
			return px.keepPrev(it.Path)
		}
		fi, err := os.Lstat(full)
		if err != nil || !fi.Mode().IsRegular() {
			return slot{skip: true}, nil // gone or replaced: the next pass sees it
		}
		e.Size, e.MTime, e.Mode, e.Inode = fi.Size(), fi.ModTime(), treeindex.ModeOf(fi.Mode()), inodeOf(fi)
	}
}

// unsettled keeps the previous entry of a file that is still changing, or
// leaves the file out while it has none.
func (px *pass) keepPrev(p string) (slot, error) {
	px.unsettled.Add(1)
	if old, ok := px.prev[p]; ok && px.reuse && px.controlExists(old.Control) {
		e := *old
		if !px.packExists(e.Pack) || px.opts.NoPacks {
			e.Pack = nil // its file is still published at its path
		}
		if !px.packExists(e.ControlPack) || px.opts.NoPacks {
			e.ControlPack = nil // as is its control file
		}
		if !px.packExists(e.Sums) || px.opts.NoPacks {
			e.Sums = nil // a client fetches the file whole
		}
		if !px.framesExist(e.Frames) || !px.wantsFrames(e.Control, e.Size) {
			e.Frames = nil // a client fetches the blocks as they are
		}
		return slot{e: e}, nil
	}
	return slot{skip: true}, nil
}

func (px *pass) controlExists(rel string) bool {
	if rel == "" {
		return true
	}
	fi, err := os.Stat(filepath.Join(px.dir, filepath.FromSlash(rel)))
	return err == nil && fi.Mode().IsRegular()
}

// hash reads the file at full into e (and its control file, when want
// names one). It reports false when the file changed while it was read.
//
// seen, if not nil, is the walk's information about the file (confined to
// the tree by its os.Root): the file is opened by path and used only if it
// is the one seen (openSeen); otherwise through px.root.
//
// When s.enc is set (to anything), the file goes into a pack: s.rec and
// s.enc are set to its record.
func (px *pass) hash(ctx context.Context, rel string, seen fs.FileInfo, e *treeindex.Entry, want string, inline bool, s *slot) (bool, error) {
	var f *os.File
	if seen != nil {
		f = openSeen(filepath.Join(px.dir, filepath.FromSlash(rel)), seen)
	}
	if f == nil {
		var err error
		if f, err = px.root.Open(rel); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, &openError{err}
		}
	}
	defer f.Close()
	px.hashed.Add(1)
	var (
		h  hash.Hash = sha256.New()
		cf *control.File
		in io.Reader = countReader{f, &px.hashedBytes}
		g  *growPlan // with AppendOnly
		fw *frameWriter
	)
	var content []byte // with a pack
	if s.enc != "" && !inline {
		// Only encodeRecord reads it: a pooled buffer.
		bp := packBufs.Get().(*[]byte)
		defer packBufs.Put(bp)
		if int64(cap(*bp)) < e.Size {
			*bp = make([]byte, 0, e.Size)
		}
		content = (*bp)[:0]
	}
	if want == "" {
		buf := bytes.NewBuffer(content)
		w := io.Writer(h)
		if inline || s.enc != "" {
			w = io.MultiWriter(h, buf)
		}
		bp := copyBufs.Get().(*[]byte)
		n, err := io.CopyBuffer(w, in, *bp)
		copyBufs.Put(bp)
		if err != nil {
			return false, err
		}
		if n != e.Size {
			return false, nil
		}
		if inline {
			e.Data = buf.Bytes()
			if e.Data == nil {
				e.Data = []byte{}
			}
		}
		content = buf.Bytes()
	} else {
		mo := zsyncpipe.MakeOptions{
			Blocksize: px.opts.Blocksize,
			Length:    e.Size,
			Legacy:    px.opts.Legacy,
			Filename:  path.Base(e.Path),
			URLs:      []string{controlURL(e.Path, px.opts.Beside)},
			MTime:     e.MTime,
			Hasher:    px.hasher,
		}
		if px.opts.AppendOnly {
			var err error
			if g, err = px.planGrowth(f, e, want, &mo, h); err != nil {
				return false, err
			}
		}
		var buf *bytes.Buffer
		if s.enc != "" {
			buf = bytes.NewBuffer(content)
			in = io.TeeReader(in, buf)
		}
		if px.wantsFrames(want, e.Size) {
			var err error
			if fw, err = px.newFrameWriter(e.Size); err != nil {
				return false, err
			}
			if fw != nil {
				defer fw.abort()
				in = io.TeeReader(in, fw)
			}
		}
		if px.opts.Legacy {
			// Legacy control files carry SHA-1 only.
			var w io.Writer = h
			if g != nil && g.cut != nil {
				w = g.cut
			}
			in = io.TeeReader(in, w)
		}
		var err error
		if cf, err = zsyncpipe.Make(ctx, in, mo); err != nil {
			return false, fmt.Errorf("%s: %w", e.Path, err)
		}
		if cf.Length != e.Size {
			return false, nil
		}
		if buf != nil {
			if int64(buf.Len()) != e.Size {
				return false, fmt.Errorf("%s: read %d bytes for its pack, not %d", e.Path, buf.Len(), e.Size)
			}
			content = buf.Bytes()
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() != e.Size || !fi.ModTime().Equal(e.MTime) || inodeOf(fi) != e.Inode {
		return false, nil
	}
	if cf != nil && !px.opts.Legacy {
		e.SHA256 = cf.SHA256
	} else {
		e.SHA256 = h.Sum(nil)
	}
	e.Frames = nil
	if fw != nil {
		if e.Frames, err = fw.finish(); err != nil {
			return false, fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	if s.enc != "" {
		s.rec, s.enc = px.encodeRecord(content, cf != nil && !px.opts.PackLarge)
		if px.wantsSums(e.Size, &treeindex.PackRef{Encoding: s.enc}) {
			if s.sums, err = px.makeSums(ctx, content); err != nil {
				return false, fmt.Errorf("%s: %w", e.Path, err)
			}
		}
	}
	if cf != nil {
		target := filepath.Join(px.dir, filepath.FromSlash(want))
		if err := px.mkdirAll(filepath.Dir(target)); err != nil {
			return false, err
		}
		// A new control file is not flushed on its own: one syncfs
		// before the index is written covers it (see index).
		noSync := px.opts.NoSync
		if old, named := px.prev[e.Path]; px.batch && !noSync && !(named && old.Control == want) {
			if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
				noSync = true
				px.batched.Add(1)
			}
		}
		var cb bytes.Buffer
		if err := control.Write(&cb, cf); err != nil {
			return false, fmt.Errorf("control file of %s: %w", e.Path, err)
		}
		if _, err := atomicfile.WriteOptions(target, atomicfile.Options{Suffix: tmpSuffix, NoSync: noSync},
			func(w io.Writer) error { _, err := w.Write(cb.Bytes()); return err }); err != nil {
			return false, fmt.Errorf("control file of %s: %w", e.Path, err)
		}
		if !px.opts.NoPacks && cb.Len() <= maxControlRecord {
			s.ctl = cb.Bytes()
		}
		px.controls.Add(1)
		e.Control = want
		if g != nil {
			px.finishGrowth(g, e)
		}
	}
	return true, nil
}

// maxControlRecord is the longest control file that goes into a control
// pack: a few hundred MB of file at the default block sizes (the 14 MB
// bin/go of a Go toolchain has a control file of 50 KB). A client fetches
// a longer one by its path, a request of its own for what is then a small
// part of the file's cost.
const maxControlRecord = treeindex.MaxPacked

// readControl returns the control file at rel (inside the tree, through
// px.root) for a control pack, or nil when it cannot be read or is longer
// than maxControlRecord: a client then fetches it by its path.
func (px *pass) readControl(rel string) []byte {
	f, err := px.root.Open(rel)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 || fi.Size() > maxControlRecord {
		return nil
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil
	}
	return b
}

// packBufs hold the content of a file that goes into a pack while it is
// read, until its record is encoded (encodeRecord copies what it keeps).
var packBufs = sync.Pool{New: func() any { return new([]byte) }}

// copyBufs are the read buffers of files without a control file.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// mkdirAll is os.MkdirAll, once per directory and pass.
func (px *pass) mkdirAll(dir string) error {
	if _, ok := px.dirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	px.dirs.Store(dir, true)
	return nil
}

// controlURL is the URL, relative to the control file, of the file at rel.
func controlURL(rel string, beside bool) string {
	p := path.Base(rel)
	if !beside {
		p = strings.Repeat("../", strings.Count(rel, "/")+1) + rel
	}
	// url.URL escapes each element and protects a colon in the first one.
	return (&url.URL{Path: p}).String()
}

// removeControl removes a control file that no entry names any more, and
// the directories of .zsyncpipe it leaves empty.
func (px *pass) removeControl(rel string) {
	full := filepath.Join(px.dir, filepath.FromSlash(rel))
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		px.warn(fmt.Errorf("index: %w", err))
		return
	}
	if !strings.HasPrefix(rel, treeindex.Dir+"/") {
		return
	}
	stop := filepath.Join(px.dir, treeindex.Dir)
	for d := filepath.Dir(full); d != stop && strings.HasPrefix(d, stop); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return
		}
	}
}

// removeTemps removes temporary files that a killed run left in dir.
func removeTemps(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && isTemp(d.Name()) {
			os.Remove(p)
		}
		return nil
	})
}
