package indexer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/strong"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Pack files (docs/trees.md, "Packs"): the content of every small file
// that has neither a control file nor inline data is also stored, each
// file compressed on its own, in pack files below treeindex.PackDir, so
// that a client fetches many of them with a few multi-range requests.
//
// Packs are immutable: a pass writes the contents it read into new packs
// (named by the hash of their content) and leaves the others alone, so
// re-indexing after one change writes one small pack. A pack more than
// half of which no entry of the new index refers to any more is
// compacted: its live records are copied (as they are, not compressed
// again) into the pass's new pack. Packs no entry refers to are removed
// only PackGrace after they were last referred to, so that a client still
// working from an earlier index finds what it names.
const (
	// DefaultPackGrace is how long a pack that the index no longer refers
	// to is kept.
	DefaultPackGrace = time.Hour
	// packTarget is the size at which a pass starts a new pack.
	packTarget = 64 << 20
	// smallPack and maxSmallPacks: when more packs than maxSmallPacks are
	// below smallPack bytes (a watched tree gets one small pack per pass
	// that changes files), they are merged into the pass's new pack.
	smallPack     = 4 << 20
	maxSmallPacks = 16
	// retiredPath holds when each pack that no entry refers to was last
	// referred to (JSON, name → Unix seconds).
	retiredPath = treeindex.Dir + "/" + treeindex.Dir + "/retired-packs.json"
)

// newPackEncoder returns the pass's zstd encoder: one for every worker
// (EncodeAll is safe for concurrent use), without the frame checksum
// (clients verify the file's SHA-256), with a window no larger than the
// largest packed file.
func newPackEncoder() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(treeindex.MaxPacked), zstd.WithLowerEncoderMem(true))
}

// packable reports whether a file of size bytes that is not inlined may go
// into a pack (a file with a control file only up to Options.PackMax: a
// client then chooses).
func (px *pass) packable(size int64) bool {
	return !px.opts.NoPacks && size > 0 && size <= treeindex.MaxPacked
}

// encodeRecord returns the pack record of content and its encoding: zstd
// (S2 when cheap is set), or the bytes as they are when that is not
// shorter.
func (px *pass) encodeRecord(content []byte, cheap bool) ([]byte, string) {
	rec, enc := []byte(nil), treeindex.PackZstd
	if cheap {
		bp := s2Bufs.Get().(*[]byte)
		if n := s2.MaxEncodedLen(len(content)); cap(*bp) < n {
			*bp = make([]byte, n)
		}
		if b := s2.Encode((*bp)[:cap(*bp)], content); len(b) < len(content) {
			rec, enc = append([]byte(nil), b...), treeindex.PackS2
		}
		s2Bufs.Put(bp)
	} else {
		rec = px.enc.EncodeAll(content, make([]byte, 0, len(content)/2+64))
	}
	if rec == nil || len(rec) >= len(content) {
		return append([]byte(nil), content...), treeindex.PackRaw
	}
	return rec, enc
}

// s2Bufs are the destination buffers of S2 records (copied out at their
// length, which S2 does not know in advance).
var s2Bufs = sync.Pool{New: func() any { return new([]byte) }}

// packExists reports whether the pack ref points into is there and long
// enough (checked once per pack and pass).
func (px *pass) packExists(ref *treeindex.PackRef) bool {
	if ref == nil {
		return true
	}
	size, ok := px.packSize(ref.Name)
	return ok && ref.Offset+ref.Length <= size
}

// packSize returns the size of the pack named name, once per pass.
func (px *pass) packSize(name string) (int64, bool) {
	if v, ok := px.packSizes.Load(name); ok {
		return v.(int64), v.(int64) >= 0
	}
	size := int64(-1)
	if fi, err := os.Lstat(filepath.Join(px.dir, filepath.FromSlash(treeindex.PackPath(name)))); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	px.packSizes.Store(name, size)
	return size, size >= 0
}

// packer writes the new packs of one pass. It is used by the pass's sink
// and then by compact, one goroutine at a time. A pass has two: one for
// the contents of files (Entry.Pack), one for control files
// (Entry.ControlPack), which go into packs of their own, so that the
// control records a client fetches together lie together.
type packer struct {
	px *pass
	// ref selects the reference this packer's records are for.
	ref  func(e *treeindex.Entry) **treeindex.PackRef
	cur  *packFile
	done []*packFile
	// Records and Bytes count what was written; Repacked the records
	// copied from packs being compacted.
	records, bytes, repacked int64
}

// packFile is one new pack being written: a temporary file until close.
type packFile struct {
	f    *os.File
	sum  hash.Hash
	off  int64
	refs []int // indexes into the pass's entries that point into it
	name string
}

// add appends rec to the current pack for the entry cur[i] and returns
// where it is (without the pack's name, set by close).
func (pk *packer) add(rec []byte, enc string, i int) (*treeindex.PackRef, error) {
	if pk.cur != nil && pk.cur.off+int64(len(rec)) > packTarget {
		if err := pk.finish(); err != nil {
			return nil, err
		}
	}
	if pk.cur == nil {
		dir := filepath.Join(pk.px.dir, filepath.FromSlash(treeindex.PackDir))
		if err := pk.px.mkdirAll(dir); err != nil {
			return nil, fmt.Errorf("packs: %w", err)
		}
		f, err := os.CreateTemp(dir, ".pack.*"+tmpSuffix)
		if err != nil {
			return nil, fmt.Errorf("packs: %w", err)
		}
		// Readable by the web server, as control files are (CreateTemp
		// makes 0600).
		if err := f.Chmod(0o644); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("packs: %w", err)
		}
		pk.cur = &packFile{f: f, sum: sha256.New()}
	}
	p := pk.cur
	if _, err := p.f.Write(rec); err != nil {
		return nil, fmt.Errorf("packs: write %s: %w", p.f.Name(), err)
	}
	p.sum.Write(rec)
	ref := &treeindex.PackRef{Offset: p.off, Length: int64(len(rec)), Encoding: enc}
	p.off += int64(len(rec))
	p.refs = append(p.refs, i)
	pk.records++
	pk.bytes += int64(len(rec))
	return ref, nil
}

// finish completes the current pack: flushed (unless the pass flushes the
// file system at once, or NoSync) and renamed to its name.
func (pk *packer) finish() error {
	p := pk.cur
	if p == nil {
		return nil
	}
	pk.cur = nil
	px := pk.px
	var err error
	switch {
	case px.opts.NoSync:
	case px.batch:
		px.batched.Add(1) // a new name no index refers to yet: the pass's syncfs covers it
	default:
		err = osfile.Sync(p.f)
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.name = hex.EncodeToString(p.sum.Sum(nil)[:16])
	if err == nil {
		err = os.Rename(p.f.Name(), filepath.Join(px.dir, filepath.FromSlash(treeindex.PackPath(p.name))))
	}
	if err != nil {
		os.Remove(p.f.Name())
		return fmt.Errorf("packs: %w", err)
	}
	px.packSizes.Store(p.name, p.off)
	pk.done = append(pk.done, p)
	return nil
}

// close completes the packs and sets the name of every entry's pack.
func (pk *packer) close(cur []treeindex.Entry) error {
	if err := pk.finish(); err != nil {
		return err
	}
	for _, p := range pk.done {
		for _, i := range p.refs {
			(*pk.ref(&cur[i])).Name = p.name
		}
	}
	return nil
}

// contentRef and controlRef select an entry's references for a packer.
func contentRef(e *treeindex.Entry) **treeindex.PackRef { return &e.Pack }
func controlRef(e *treeindex.Entry) **treeindex.PackRef { return &e.ControlPack }
func sumsRef(e *treeindex.Entry) **treeindex.PackRef    { return &e.Sums }

// abort removes the pack being written, if any.
func (pk *packer) abort() {
	if pk.cur != nil {
		pk.cur.f.Close()
		os.Remove(pk.cur.f.Name())
		pk.cur = nil
	}
}

// compact copies into the pass's new pack the live records of the packs
// that are more than half garbage, and of the small packs when there are
// too many of them; it reports whether it moved any.
func (pk *packer) compact(cur []treeindex.Entry) (bool, error) {
	px := pk.px
	live := map[string]int64{}
	for i := range cur {
		if p := *pk.ref(&cur[i]); p != nil && p.Name != "" {
			live[p.Name] += p.Length
		}
	}
	var small []string
	pick := map[string]bool{}
	for name, n := range live {
		size, ok := px.packSize(name)
		if !ok {
			continue
		}
		if 2*n < size {
			pick[name] = true
		}
		if size < smallPack {
			small = append(small, name)
		}
	}
	if len(small) > maxSmallPacks {
		for _, name := range small {
			pick[name] = true
		}
	}
	if len(pick) == 0 {
		return false, nil
	}
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var buf []byte
	for i := range cur {
		old := *pk.ref(&cur[i])
		if old == nil || !pick[old.Name] {
			continue
		}
		f := files[old.Name]
		if f == nil {
			var err error
			if f, err = os.Open(filepath.Join(px.dir, filepath.FromSlash(treeindex.PackPath(old.Name)))); err != nil {
				return false, fmt.Errorf("packs: compact: %w", err)
			}
			files[old.Name] = f
		}
		if int64(cap(buf)) < old.Length {
			buf = make([]byte, old.Length)
		}
		buf = buf[:old.Length]
		if _, err := f.ReadAt(buf, old.Offset); err != nil {
			return false, fmt.Errorf("packs: compact: %s: %w", f.Name(), err)
		}
		ref, err := pk.add(buf, old.Encoding, i)
		if err != nil {
			return false, err
		}
		*pk.ref(&cur[i]) = ref // a new PackRef: the old one may be shared with the previous index
		pk.repacked++
	}
	return true, nil
}

// retirePacks removes the packs that no entry of cur refers to and that no
// index has referred to for PackGrace; the others that cur does not refer
// to are noted with the time they were last referred to. A pack written by
// a pass that was killed before its index was written is treated the same.
// Files of frames are retired alike.
func (px *pass) retirePacks(cur []treeindex.Entry) {
	packs, frames := map[string]bool{}, map[string]bool{}
	for i := range cur {
		for _, p := range []*treeindex.PackRef{cur[i].Pack, cur[i].ControlPack, cur[i].Sums} {
			if p != nil {
				packs[p.Name] = true
			}
		}
		if f := cur[i].Frames; f != nil {
			frames[f.Name] = true
		}
	}
	px.retire(treeindex.PackDir, treeindex.PackSuffix, retiredPath, packs)
	px.retire(treeindex.FramesDir, treeindex.FramesSuffix, retiredFramesPath, frames)
}

// retire removes the files NAME+suffix of dirRel whose names are not
// used and have not been for PackGrace, noting in the JSON file at
// stateRel when each of the others was last used.
func (px *pass) retire(dirRel, suffix, stateRel string, used map[string]bool) {
	dir := filepath.Join(px.dir, filepath.FromSlash(dirRel))
	names, err := readDirNames(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			px.warn(fmt.Errorf("index: %s: %w", dirRel, err))
		}
		return
	}
	statePath := filepath.Join(px.dir, filepath.FromSlash(stateRel))
	retired := map[string]int64{}
	if b, err := osfile.ReadRegular(context.Background(), statePath); err == nil {
		json.Unmarshal(b, &retired) // a damaged file only restarts the grace periods
	}
	now := time.Now()
	next := map[string]int64{}
	sort.Strings(names)
	for _, n := range names {
		name, ok := strings.CutSuffix(n, suffix)
		if !ok || !treeindex.ValidPackName(name) || used[name] {
			continue
		}
		since, known := retired[name]
		switch {
		case !known:
			next[name] = now.Unix()
		case now.Sub(time.Unix(since, 0)) >= px.opts.packGrace():
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				px.warn(fmt.Errorf("index: %w", err))
				next[name] = since
			} else if suffix == treeindex.PackSuffix {
				px.packsRemoved++
			}
		default:
			next[name] = since
		}
	}
	if len(next) == 0 && len(retired) == 0 {
		return
	}
	b, _ := json.Marshal(next)
	if err := os.MkdirAll(filepath.Dir(statePath), 0o755); err == nil {
		_, err = atomicfile.WriteOptions(statePath, atomicfile.Options{Suffix: tmpSuffix, NoSync: true},
			func(w io.Writer) error { _, err := w.Write(b); return err })
		if err != nil {
			px.warn(fmt.Errorf("index: %s: %w", dirRel, err))
		}
	}
}

// Block sums (Entry.Sums): the publisher writes them for the packed files
// whose content does not compress (their pack record is raw), from
// sumsMin bytes on, so that a client holding an older version fetches
// only the blocks it lacks, as ranges of the raw record, many files' in
// one request (a file with a control file has sums too: they have
// smaller blocks, and need no request of its own). A compressible file
// costs its client less compressed whole than as a delta (docs/trees.md,
// "Packs"); gzip data, images or archives whose header alone changed cost
// a block or two instead of the whole file.

// sumsMin is the smallest file that gets block sums: four blocks of 256
// bytes. Below it a block and the sums cost about what the file does.
const sumsMin = 1024

// wantsSums reports whether a file of size bytes with the pack record
// ref gets block sums. They are MD5, so a legacy tree (MD4) gets none.
func (px *pass) wantsSums(size int64, ref *treeindex.PackRef) bool {
	return !px.opts.NoPacks && !px.opts.Legacy && size >= sumsMin && ref != nil && ref.Encoding == treeindex.PackRaw
}

// makeSums returns the sums record of content.
func (px *pass) makeSums(ctx context.Context, content []byte) ([]byte, error) {
	n := int64(len(content))
	f, err := stages.BlockChecksums(ctx, bytes.NewReader(content), stages.ChecksumOptions{
		Blocksize:   control.SumsBlocksize(n),
		HashLengths: control.SumsHashLengths(control.SumsBlocksize(n)),
		Length:      n,
		Algorithm:   strong.MD5,
		Hasher:      px.hasher,
	})
	if err != nil {
		return nil, fmt.Errorf("block sums: %w", err)
	}
	return control.EncodeSums(f)
}
