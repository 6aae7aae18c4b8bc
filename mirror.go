package zsyncpipe

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/sourcegraph/conc/pool"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/frames"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/seedscan"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/strong"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// MirrorOptions configures Mirror.
type MirrorOptions struct {
	// URL is the root of the published tree: the http(s) URL of its
	// directory (what a browser would open), a URL of a scheme of
	// Transports, or a local directory or file URL. Required.
	URL string
	// Dir is the local directory to make match the tree; required. It is
	// created if missing.
	Dir string
	// HTTP configures the HTTP requests. The built-in HTTP transport uses
	// one client for every file of the tree, so connections are kept
	// alive (or HTTP/2 streams shared) across files.
	HTTP httpsource.Options
	// Transports reads trees at URLs of further schemes and may replace
	// the built-in ones, as for Sync.
	Transports Transports
	// Delete removes local files and directories the index does not list,
	// once every file of the index is in place. Never anything outside Dir.
	Delete bool
	// Checksum hashes every local file whose size matches instead of
	// trusting the size and mtime recorded by the last run (rsync's -c).
	Checksum bool
	// AllowOutsideLinks accepts symlinks that point outside Dir (absolute,
	// or with enough ".." elements); without it an index holding one is
	// refused.
	AllowOutsideLinks bool
	// DryRun reports what would change and how many bytes would be
	// downloaded (the seed scan runs, reading only) without changing Dir.
	DryRun bool
	// Recheck looks at the local files (size and mtime, as always) even
	// when the index has not changed since the last complete run. Without
	// it (and without Checksum) such a run ends after the one request that
	// asks for the index, trusting Dir to be as that run left it.
	Recheck bool
	// SkipUnchanged leaves the files that are the same in the new tree out
	// of the scan for the data of changed and new files: only the old
	// versions of changed files and the files the new tree no longer lists
	// are scanned (a file whose whole content is anywhere in the tree is
	// still copied). That still finds moved, renamed and split files and
	// data shared with files that changed, but no data of unchanged files.
	//
	// By default (neither SkipUnchanged nor ScanUnchanged) those files are
	// scanned in full — every byte offset, the rolling checksum — and the
	// files the new tree keeps unchanged are looked at only at multiples of
	// the block size (stages.Seed.Aligned): their data is found where a
	// target holds it in whole blocks of theirs (a copy, a library
	// concatenated to other files at a block boundary, a file cut at one),
	// at a small part of the cost of rolling through them; a kept file is
	// read only in the segments where its chunk checksums, when the run
	// has them (it hashed the file, or an earlier run kept them in
	// MirrorStateDir/chunks), say a block looked for may be
	// (stages.Seed.ChunkSums).
	SkipUnchanged bool
	// ScanUnchanged scans the files the new tree keeps unchanged in full
	// too, at every byte offset: it also finds their data where a target
	// holds it shifted by other than whole blocks (a new file made of parts
	// of unchanged ones, cut anywhere), at the cost of rolling through
	// the whole tree. It excludes SkipUnchanged.
	ScanUnchanged bool
	// NoSkim has the scan look at every byte offset of the files it reads
	// at every offset, also where a file shares nothing with the files to
	// rebuild. By default the scan skims over such stretches: after 64 KiB
	// of a file without a match it looks at the first 8 KiB of offsets of
	// every 32 KiB, and once one of them matches it goes back to where it
	// began to skim and looks at every offset again
	// (stages.DeltaOptions.Skim). That takes a third of the CPU of the full
	// scan of an executable rebuilt by another compiler version, and may
	// miss a short run of shared data alone in a long stretch of other
	// data: on go1.22.12 -> go1.24.5 0.18 MB of the 35.4 MB a full scan
	// finds, 0.16 MB of 36.9 MB on go1.24.4 -> go1.24.5.
	NoSkim bool
	// NoFrames fetches the blocks a rebuilt file lacks as they are, never
	// the compressed frames the publisher may keep of it (docs/trees.md,
	// "Frames").
	NoFrames bool
	// Parallel is how many files are fetched at once; 0 means 16. Files
	// rebuilt through the sync pipeline run at most 8 at a time, each with
	// its own requests in flight.
	Parallel int
	// Workers bounds scanning and hashing goroutines; 0 means one per
	// physical core.
	Workers int
	// NoFsync skips flushing files before they are renamed into place,
	// and the flush of the whole tree that ends a run (docs/trees.md,
	// "Guarantees").
	NoFsync bool
	// Progress, if set, is called from time to time, from several
	// goroutines.
	Progress func(MirrorProgress)
	// Logf, if set, receives notes: a restart on a new generation, files
	// that failed, dry-run lines. The run's goroutines call it one at a
	// time.
	Logf func(format string, args ...any)

	// hook, set by tests, is told of the flushes and renames (see
	// mirrorRun.event).
	hook func(ev string, paths []string)
	// batch, set by tests, replaces flushFiles.
	batch int
	// wholeMax, set by tests, replaces seedlessWholeMax.
	wholeMax int64
	// seeds, set by tests, is given the scan's seeds before it starts.
	seeds func([]stages.Seed)
}

// MirrorProgress is a snapshot of a running Mirror.
type MirrorProgress struct {
	// Phase is "index", "check", "scan", "fetch" or "finish".
	Phase string
	// FilesDone and FilesTotal count the files to fetch or rebuild.
	FilesDone, FilesTotal int64
	// Reused counts bytes of those files found locally, Fetched those
	// downloaded so far, Total their whole size.
	Reused, Fetched, Total int64
	// Scanned and ScanTotal count bytes of local files scanned for data.
	Scanned, ScanTotal int64
}

// MirrorSummary reports what a Mirror did (or, for a dry run, would do).
type MirrorSummary struct {
	// Generation is the index generation the tree now matches.
	Generation uint64
	// Unchanged, Updated, New and Deleted count regular files; Links and
	// Dirs count symlinks and directories created or changed.
	Unchanged, Updated, New, Deleted, Links, Dirs int
	// Reused counts bytes of updated and new files taken from local data;
	// Fetched the bytes of their content downloaded (payload).
	Reused, Fetched int64
	// Downloaded counts every byte received (index, control files, file
	// data, protocol overhead) and Requests the requests sent, when the
	// source reports them.
	Downloaded, Requests int64
	// Packed counts the small files fetched from the publisher's packs
	// (many per request), PackFallbacks those that could not be had from
	// their pack and were fetched by their path instead.
	Packed, PackFallbacks int
	// Patched counts the files of Packed that were patched from their old
	// version: only the blocks it lacked were fetched, as ranges of their
	// pack records (their entries have block sums).
	Patched int
	// Frames counts the compressed frames fetched (entries with frames):
	// instead of the blocks a rebuilt file lacked in them, or for a file
	// fetched whole; FramesDecoded the bytes they delivered.
	Frames, FramesDecoded int64
	// FramesSaved is, for a dry run, about how many fewer bytes the run
	// will receive for taking compressed frames instead of the missing
	// blocks (or of whole files) where they are shorter: Fetched counts
	// the blocks.
	FramesSaved int64
	// Restarts counts restarts on a new index generation.
	Restarts int
	// NotModified reports that the server said the index had not changed.
	NotModified bool
	// Duration is the wall time.
	Duration time.Duration
	// Phases is the timeline of the run (of its last attempt, after a
	// restart): each phase with when it started and ended, in the order
	// they started. Phases may overlap.
	Phases []MirrorPhase
}

// MirrorPhase is one phase of a Mirror run: "index", "walk", "hash",
// "controls", "scan", "rebuild", "whole", "place", …
type MirrorPhase struct {
	Name string
	// Start and End are the times since the run started.
	Start, End time.Duration
}

// Errors of Mirror, beside those of the other entry points.
var (
	// ErrTreeChanged reports that the published tree kept changing while
	// the mirror ran, so that it could not finish on one generation.
	ErrTreeChanged = errors.New("published tree changed during the mirror")
)

// Mirror makes opts.Dir match the tree published at opts.URL: it fetches the
// tree index (conditionally: an index the server reports unchanged costs
// one request), keeps files whose size and mtime match what the last run
// verified (or whose hash matches), rebuilds changed and new files from any
// local data — one scan of all local files against the blocks of every
// changed file — fetching only what is missing, fetches small files whole,
// and sets directories, symlinks, modes and mtimes as listed. Every file is
// verified against the index's SHA-256 before it is renamed into place; an
// interrupted run leaves only complete files and resumes where it stopped.
//
// An index that is malformed or unsafe (paths escaping Dir, duplicates,
// links out of Dir without AllowOutsideLinks) is refused before anything
// changes; the error wraps treeindex.ErrFormat (and relpath.ErrUnsafe for
// paths and links that would leave Dir). When
// the tree changes on the server during the run, Mirror starts again on the
// new generation (at most three times, then ErrTreeChanged).
func Mirror(ctx context.Context, opts MirrorOptions) (*MirrorSummary, error) {
	start := time.Now()
	if opts.Dir == "" {
		return nil, fmt.Errorf("mirror: no directory: %w", ErrUsage)
	}
	if opts.SkipUnchanged && opts.ScanUnchanged {
		return nil, fmt.Errorf("mirror: SkipUnchanged and ScanUnchanged exclude each other: %w", ErrUsage)
	}
	tree, err := openTree(opts.URL, opts.Transports, opts.HTTP)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	defer tree.close()
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	meta := filepath.Join(dir, MirrorStateDir)
	sum := &MirrorSummary{}
	defer func() {
		sum.Duration = time.Since(start)
		sum.Requests, sum.Downloaded = tree.stats(sum.Fetched)
	}()
	// The last run left Dir complete: an index the server reports
	// unchanged since then ends this one after that one request.
	var first *Fetched
	done := loadMirrorDone(meta, opts.URL)
	if done != nil && !opts.Checksum && !opts.Recheck && (done.Delete || !opts.Delete) {
		f, err := tree.get(ctx, treeindex.IndexPath, done.IndexModified, maxIndexSize)
		if err != nil {
			return sum, fmt.Errorf("mirror: fetch the tree index: %w: %w", ErrFetch, err)
		}
		if f.NotModified {
			sum.NotModified, sum.Generation, sum.Unchanged = true, done.Generation, done.Files
			return sum, nil
		}
		first = f
	}
	if !opts.DryRun {
		if err := os.MkdirAll(filepath.Join(meta, "parts"), 0o755); err != nil {
			return nil, fmt.Errorf("mirror: %w", err)
		}
		if err := removeMirrorDone(meta); err != nil {
			return nil, err
		}
	}
	// One descriptor of the file system for every syncfs of the run,
	// opened before anything is written: a syncfs on it reports every
	// write error since (a directory opened for each syncfs would miss
	// an error met by the kernel's writeback before that open).
	var fsys *osfile.FS
	if !opts.DryRun && !opts.NoFsync && osfile.HasSyncFS {
		if fsys, err = osfile.OpenFS(filepath.Join(meta, "parts")); err != nil {
			return nil, fmt.Errorf("mirror: %w", err)
		}
		defer fsys.Close()
	}
	for attempt := 0; ; attempt++ {
		m := &mirrorRun{opts: opts, dir: dir, meta: meta, sum: sum, src: tree, first: first, start: start, fsys: fsys}
		m.parts = filepath.Join(m.meta, "parts")
		first = nil
		changed, err := m.run(ctx)
		if err == nil && !changed && !opts.DryRun {
			err = m.saveDone()
		}
		if err != nil || !changed {
			return sum, err
		}
		if attempt == 2 {
			return sum, fmt.Errorf("mirror: %w (gave up after %d attempts)", ErrTreeChanged, attempt+1)
		}
		sum.Restarts++
		m.logf("the published tree changed during the run; starting again on the new index")
		*sum = MirrorSummary{Restarts: sum.Restarts, Fetched: sum.Fetched, Reused: sum.Reused, Packed: sum.Packed, PackFallbacks: sum.PackFallbacks}
	}
}

// maxIndexSize bounds the tree index Mirror downloads.
const maxIndexSize = 1 << 30

// mirrorRun is one pass of Mirror over one index.
type mirrorRun struct {
	opts             MirrorOptions
	dir, meta, parts string
	fsys             *osfile.FS // the file system of parts, for syncfs (see Mirror); nil with NoFsync
	sum              *MirrorSummary
	src              *remoteTree
	st               *mirrorState
	mu               sync.Mutex // guards st.Files
	logMu            sync.Mutex // serializes the calls to opts.Logf
	idx              *treeindex.Index
	// paths holds every path idx lists (listed adds them while the index is
	// read): a map lookup instead of idx.Lookup's binary search, which cost
	// 0.02 s of the end of a run on a Go tree (deleteExtra, dirAttrs).
	paths    map[string]struct{}
	first    *Fetched  // the index, when Mirror fetched it already
	modified time.Time // Last-Modified of the index
	local    map[string]os.FileInfo
	tmps     []string        // local paths ending in tmpSuffix
	stale    map[string]bool // those a killed run left, by absolute path (see staleTmps)
	// partsLeft lists the names in the parts directory when the run
	// started (what earlier runs left; see staleTmps), when partsListed:
	// a job's file that is not there is not looked up (see ready).
	partsLeft   map[string]bool
	partsListed bool
	// seedless is set when DIR holds no local data at all (no regular
	// file that is not empty): a first copy. Files up to seedlessWholeMax
	// are then fetched whole, without their control files (see
	// wholeWithoutSeeds).
	seedless         bool
	bufs             sync.Pool                  // *[]byte of hashBufSize, for hashLocal
	join             hashJoin                   // the index and the walk meet here (mirror_hash.go)
	hq               *hashQueue                 // hashes local files from the start
	hashed           map[string]string          // local files hashed by this run ("" unreadable); guarded by mu
	chunkSums        map[string][]uint32        // their chunk checksums, for the scan (stages.Seed.ChunkSums); guarded by mu
	learnt           map[string][]uint32        // chunk checksums learnt this run, by content (mirror_chunks.go); guarded by mu
	storedChunks     func() map[string][]uint32 // those earlier runs kept, read once, beside the run's start
	bg               sync.WaitGroup             // the index's cache being written, unchanged files retouched
	bgErr            error                      // of those; guarded by mu
	unchanged        map[string]string          // local files that are the same in the new tree: their SHA-256, hex
	touched          atomic.Bool                // something in Dir was created, replaced or removed
	byHash           map[string]string          // SHA-256 hex → local path holding that content
	jobs             []*fileJob
	filesDone        atomic.Int64
	reused, fetched  atomic.Int64
	scanned          atomic.Int64
	total, scanTotal int64
	errs             []error
	errMu            sync.Mutex
	lastProgress     atomic.Int64
	saved            time.Time     // guarded by mu
	saveEvery        time.Duration // guarded by mu
	qmu              sync.Mutex    // guards queued
	queued           []*fileJob    // verified, to flush and rename
	flushEach        bool          // set before the fetches start: see place
	flushLater       bool          // rebuilt files are flushed by the mirror, not by Sync: see place
	// The flusher (see flusher): kick wakes it (nil when there is none;
	// set before the fetches start); flushes counts the syncfs calls
	// started, flushedTo is the number of the last one that ended (each
	// covers every file complete before it started: see complete);
	// pendFiles and pendBytes count the files completed since the last
	// one started.
	kick               chan struct{}
	flushes, flushedTo atomic.Int64
	// renaming counts the flusher's renames under way: they run on
	// goroutines of their own, so that the next syncfs need not wait for
	// them (see syncAll).
	renaming             sync.WaitGroup
	flushFailed          atomic.Bool  // a syncfs failed: see syncAll
	dropped              atomic.Int64 // bytes of cached pages dropped, of local files and written ones (see dropWritten)
	pendFiles, pendBytes atomic.Int64
	emu                  sync.Mutex  // guards holding, held
	holding              bool        // see hold
	holdFlush            atomic.Bool // holding, for complete: see scanFlushBytes
	held                 []*fileJob  // verified while holding
	// creating is held (write-locked) by the phases that create many
	// files themselves (copy, open parts) and read-locked by
	// each file fetched beside them: creating files in one directory
	// group at once serializes in the kernel (ext4 scans its recently
	// freed inodes under the group's lock), and the critical path is
	// theirs.
	creating    sync.RWMutex
	hmu         sync.Mutex // guards hashers
	hashers     map[strong.Algorithm]*simd.Hasher
	prefetched  map[*treeindex.Entry]*ctlFetch // see prefetchControls
	prefetching sync.WaitGroup
	// scanStarted is closed when the scan starts (or place knows there is
	// none): the early fetches of small files wait for it (see startEarly).
	scanStarted chan struct{}
	// onScan, if set, is called as the scan starts, after its setup.
	onScan func()
	// localSorted returns the paths of m.local, sorted: the order in
	// which the scan takes its seeds (sorted while the control files
	// arrive; see place).
	localSorted func() []string
	dirty       bool       // the state changed; guarded by mu
	start       time.Time  // of Mirror, for the phases' times
	batchBufs   sync.Pool  // of *[]byte: see batchBuf
	phmu        sync.Mutex // guards sum.Phases
	// Small files from packs (mirror_pack.go).
	packedFiles, packFallbacks atomic.Int64
	patchedFiles               atomic.Int64 // of packedFiles (mirror_delta.go)
	frames, framesDecoded      atomic.Int64 // fetched (mirror_frames.go)
	frameBufs                  frames.Buffers
	framesSaved                atomic.Int64 // a dry run's estimate (mirror_frames.go)
	decOnce                    sync.Once
	dec                        *zstd.Decoder
	decErr                     error
}

// phase records that the phase name starts now; the function it returns
// records its end.
func (m *mirrorRun) phase(name string) (end func()) {
	m.phmu.Lock()
	i := len(m.sum.Phases)
	now := time.Since(m.start)
	m.sum.Phases = append(m.sum.Phases, MirrorPhase{Name: name, Start: now, End: now})
	m.phmu.Unlock()
	return func() {
		m.phmu.Lock()
		m.sum.Phases[i].End = time.Since(m.start)
		m.phmu.Unlock()
	}
}

// fileJob is a file of the index that must be written.
type fileJob struct {
	e      *treeindex.Entry
	hex    string
	exists bool     // something is at the path now
	from   string   // a local file with the same content, to copy
	dupOf  *fileJob // an earlier job with the same content
	f      *control.File
	tmp    string      // the verified content, ready to be renamed
	fi     os.FileInfo // tmp's, when its mode and mtime are set already
	how    string      // "copy", "inline", "whole", "sync", "dup"
	reused int64       // bytes the scan found locally, for "sync"
	placed bool        // renamed into place
	synced bool        // tmp was flushed already
	done   bool        // tmp is complete: after is set (see complete)
	after  int64       // the number of the last syncfs started before tmp was complete
	early  bool        // fetched beside the scan (see startEarly)
	dups   []*fileJob  // "dup" jobs to copy from this one's file once verified
	part   *partFile   // for "sync": its partial result, open from the scan to the rebuild
}

func (m *mirrorRun) logf(format string, args ...any) {
	if m.opts.Logf != nil {
		m.logMu.Lock()
		defer m.logMu.Unlock()
		m.opts.Logf(format, args...)
	}
}

func (m *mirrorRun) progress(phase string, force bool) {
	if m.opts.Progress == nil {
		return
	}
	now := time.Now().UnixNano()
	if !force && now-m.lastProgress.Load() < int64(100*time.Millisecond) {
		return
	}
	m.lastProgress.Store(now)
	m.opts.Progress(MirrorProgress{
		Phase: phase, FilesDone: m.filesDone.Load(), FilesTotal: int64(len(m.jobs)),
		Reused: m.reused.Load(), Fetched: m.fetched.Load(), Total: m.total,
		Scanned: m.scanned.Load(), ScanTotal: m.scanTotal,
	})
}

func (m *mirrorRun) fail(err error) {
	m.errMu.Lock()
	m.errs = append(m.errs, err)
	m.errMu.Unlock()
}

// run mirrors the current index. It reports changed when the index changed
// on the server during the run and the caller should start again.
func (m *mirrorRun) run(ctx context.Context) (changed bool, err error) {
	m.st = loadMirrorState(m.meta, m.opts.URL)
	m.storedChunks = sync.OnceValue(func() map[string][]uint32 { return loadChunks(m.meta) })
	go m.storedChunks()
	defer m.prefetching.Wait()
	defer m.bg.Wait()
	m.progress("index", true)
	// Dir is walked while the index is fetched and read, and the local
	// files whose content the state cannot vouch for are hashed as soon
	// as both have named them (mirror_hash.go).
	m.hq = newHashQueue(m, "hash")
	// The walk keeps up to maxKeptDirs directories open, the parts and
	// seeds come on top: the descriptor table grows to that once, now,
	// instead of doubling six times, each doubling stalling every thread
	// that opens a file meanwhile (osfile.ReserveDescriptors).
	m.bg.Go(func() { osfile.ReserveDescriptors(maxKeptDirs() + openFilesBeyondDirs) })
	if len(m.st.Files) == 0 { // a first run: the state grows as files are hashed
		m.st.Files = make(map[string]fileState, 4096)
	}
	defer m.closeDirs() // after the hashing stopped
	defer m.hq.stop()
	m.local = map[string]os.FileInfo{}
	walked := make(chan error, 1)
	go func() {
		defer m.phase("walk")()
		walked <- m.walkLocal()
	}()
	end := m.phase("index")
	err = m.loadIndex(ctx)
	if err == nil {
		err = m.checkIndex()
	}
	end()
	if werr := <-walked; err == nil {
		err = werr
	}
	if err != nil {
		return false, err
	}
	m.joined()
	m.sum.Generation = m.idx.Header.Generation
	m.staleTmps()
	m.localSorted = sync.OnceValue(func() []string {
		rest := make([]string, 0, len(m.local))
		for rel := range m.local {
			rest = append(rest, rel)
		}
		sort.Strings(rest)
		return rest
	})
	m.progress("check", true)
	if err := m.classify(ctx); err != nil {
		return false, err
	}
	if m.opts.DryRun {
		return false, m.dryRun(ctx)
	}
	defer func() {
		m.sum.Reused += m.reused.Load()
		m.sum.Fetched += m.fetched.Load()
		m.sum.Packed += int(m.packedFiles.Load())
		m.sum.PackFallbacks += int(m.packFallbacks.Load())
		m.sum.Patched += int(m.patchedFiles.Load())
		m.sum.Frames += m.frames.Load()
		m.sum.FramesDecoded += m.framesDecoded.Load()
		if m.dec != nil {
			m.dec.Close()
		}
		m.bg.Wait()
		var serr error
		m.mu.Lock()
		if m.dirty {
			serr = m.st.save(m.meta, m.opts.NoFsync)
		}
		m.mu.Unlock()
		if serr == nil {
			serr = m.bgErr
		}
		if serr != nil && err == nil {
			err = serr
		}
	}()
	defer func() {
		for _, h := range m.hashers {
			h.Close()
		}
	}()
	defer m.closeParts()
	if err := m.place(ctx); err != nil {
		return false, err
	}
	if len(m.errs) > 0 {
		// A file that does not match the index may come from a newer
		// generation of the tree.
		if m.indexChanged(ctx) {
			return true, nil
		}
		return false, fmt.Errorf("mirror: %d files failed: %w", len(m.errs), errors.Join(m.errs...))
	}
	// The retouching of unchanged files is over before the state is
	// gone through for files no longer there (dirAttrs).
	m.bg.Wait()
	end = m.phase("finish")
	if err := m.links(); err != nil {
		return false, err
	}
	if m.opts.Delete {
		if err := m.deleteExtra(); err != nil {
			return false, err
		}
	}
	if err := m.dirAttrs(); err != nil {
		return false, err
	}
	end()
	end = m.phase("flush tree")
	if err := m.flushTree(); err != nil {
		return false, err
	}
	end()
	// Anything fetched during the run may come from a later generation
	// than the index: the index must still be the same at the end.
	end = m.phase("recheck index")
	if len(m.jobs) > 0 && m.indexChanged(ctx) {
		return true, nil
	}
	end()
	m.cleanParts()
	m.saveChunks()
	m.progress("finish", true)
	return false, nil
}

// loadIndex fetches the index, or reuses the cached copy when the server
// says it has not changed.
func (m *mirrorRun) loadIndex(ctx context.Context) error {
	cache := filepath.Join(m.meta, "index")
	since := m.st.IndexModified
	if _, err := os.Stat(cache); err != nil {
		since = time.Time{}
	}
	// An index Mirror fetched already came whole (a 304 ended the run).
	f, err := m.first, error(nil)
	if f == nil {
		if f, err = m.src.get(ctx, treeindex.IndexPath, since, maxIndexSize); err != nil {
			return fmt.Errorf("mirror: fetch the tree index: %w: %w", ErrFetch, err)
		}
	}
	body := f.Body
	if f.NotModified {
		m.sum.NotModified = true
		if body, err = osfile.ReadRegular(ctx, cache); err != nil {
			return fmt.Errorf("mirror: read the cached index: %w", err)
		}
	}
	idx, err := treeindex.ReadAll(bytes.NewReader(body), treeindex.ReaderOptions{Each: m.listed})
	if err != nil {
		return fmt.Errorf("mirror: %s: %w", treeindex.IndexPath, err)
	}
	// A weak Last-Modified (Fetched.Validator) is not kept: the next run
	// and the check for a new generation fetch the index whole.
	m.idx, m.modified = idx, f.Validator()
	if f.NotModified {
		m.modified = m.st.IndexModified
	} else if !m.opts.DryRun {
		// Written (and flushed) beside the run: the state names it only
		// once it is complete.
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			if err := atomicfile.WriteBytes(cache, 0o644, body); err != nil {
				m.mu.Lock()
				m.bgErr = fmt.Errorf("mirror: cache the index: %w", err)
				m.mu.Unlock()
				return
			}
			m.mu.Lock()
			m.st.IndexModified, m.st.Generation = m.modified, idx.Header.Generation
			m.dirty = true
			m.mu.Unlock()
		}()
	}
	return nil
}

// saveDone records that Dir matches the index, for the next run.
func (m *mirrorRun) saveDone() error {
	if m.modified.IsZero() {
		return nil // no Last-Modified: every run reads the index
	}
	d := &mirrorDone{URL: m.opts.URL, IndexModified: m.modified, Generation: m.idx.Header.Generation, Delete: m.opts.Delete}
	for i := range m.idx.Entries {
		if m.idx.Entries[i].Type == treeindex.File {
			d.Files++
		}
	}
	return d.save(m.meta, m.opts.NoFsync)
}

// indexChanged reports whether the index on the server is no longer the one
// this run mirrors.
func (m *mirrorRun) indexChanged(ctx context.Context) bool {
	f, err := m.src.get(ctx, treeindex.IndexPath, m.modified, maxIndexSize)
	if err != nil {
		return false
	}
	if f.NotModified {
		return false
	}
	idx, err := treeindex.ReadAll(bytes.NewReader(f.Body), treeindex.ReaderOptions{})
	if err != nil || bytes.Equal(idx.Sum, m.idx.Sum) {
		return false
	}
	return true
}

// checkIndex refuses what the reader cannot judge alone: entries in the
// mirror's own state directory, links leaving the tree.
func (m *mirrorRun) checkIndex() error {
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Path == MirrorStateDir || strings.HasPrefix(e.Path, MirrorStateDir+"/") {
			return fmt.Errorf("mirror: index lists %q, the mirror's own directory: %w: %w", e.Path, treeindex.ErrFormat, relpath.ErrUnsafe)
		}
		if e.Type == treeindex.Symlink && !m.opts.AllowOutsideLinks && !e.LinkInside() {
			return fmt.Errorf("mirror: index entry %q is a symlink to %q, outside the tree (allow with --allow-outside-links): %w: %w", e.Path, e.Target, treeindex.ErrFormat, relpath.ErrUnsafe)
		}
	}
	return nil
}

// walkLocal lists what is in Dir, without following symlinks.
func (m *mirrorRun) walkLocal() error {
	err := walkTree(m.dir, func(rel string) bool { return rel == MirrorStateDir }, func(rel string, fi fs.FileInfo) {
		if strings.HasSuffix(rel, tmpSuffix) && fi.Mode().IsRegular() {
			m.join.mu.Lock()
			m.tmps = append(m.tmps, rel) // see staleTmps
			m.join.mu.Unlock()
		}
		m.found(rel, fi)
	}, m.keepDir)
	if err != nil {
		return fmt.Errorf("mirror: list %s: %w", m.dir, err)
	}
	return nil
}

// staleTmps sets apart, once the index is read, the temporary files of
// files fetched whole that a killed run left beside their paths (unless
// the index lists a file of that name): they are not local files of the
// tree. A complete and verified one is taken as it is (ready); the others
// are written over when the same file is fetched again (writeVerified:
// the same inode), and removed at the end (removeStale), after the run's
// creates, which the removals would slow (see docs/trees.md). It also
// removes the directories an older version made in the parts directory, a
// directory per rebuilt file, which would be in the way of the flat
// layout (see partPath).
func (m *mirrorRun) staleTmps() {
	ents, err := os.ReadDir(m.parts)
	m.partsListed = err == nil || errors.Is(err, fs.ErrNotExist)
	m.partsLeft = make(map[string]bool, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			if !m.opts.DryRun {
				os.RemoveAll(filepath.Join(m.parts, e.Name()))
			}
			continue
		}
		m.partsLeft[e.Name()] = true
	}
	for _, rel := range m.tmps {
		if m.inIndex(rel) {
			continue
		}
		delete(m.local, rel)
		if m.stale == nil {
			m.stale = map[string]bool{}
		}
		m.stale[filepath.Join(m.dir, filepath.FromSlash(rel))] = true
	}
}

// classify decides, per file of the index, whether it is unchanged and how
// to get it otherwise; it hashes local files where the state cannot vouch
// for them.
func (m *mirrorRun) classify(ctx context.Context) error {
	// Maps of their final size at once: growing them costs more than
	// filling them on a tree of 10,000 files.
	m.byHash = make(map[string]string, len(m.local))
	m.unchanged = make(map[string]string, len(m.idx.Entries))
	m.seedless = !m.hasLocalData()
	m.prefetchControls(ctx)
	// Files whose size matches but whose content the state cannot vouch
	// for were queued for hashing as the index and the walk named them
	// (listed, found); any they missed is hashed now.
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.File {
			continue
		}
		fi := m.local[e.Path]
		if fi == nil || !fi.Mode().IsRegular() || fi.Size() != e.Size || m.freshHash(e.Path, fi, true) != "" {
			continue
		}
		m.consider(e.Path, fi, e.Size)
	}
	err := m.hq.wait(ctx)
	m.closeDirs()
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	// Local contents known: hashed now, or vouched for by the state (what
	// freshHash returns, in one pass); with Checksum, only the hashes of
	// this run say a file is unchanged.
	trusted := make(map[string]string, len(m.local))
	m.mu.Lock()
	for rel, fi := range m.local {
		h, hashed := m.hashed[rel]
		if hashed && h == "" {
			continue
		}
		if h = m.st.hashOf(rel, fi); h == "" {
			continue
		}
		m.byHash[h] = rel
		if hashed || !m.opts.Checksum {
			trusted[rel] = h
		}
	}
	m.mu.Unlock()
	first := map[string]*fileJob{}
	var retouch []*treeindex.Entry // unchanged, with another mode or mtime
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.File {
			continue
		}
		fi := m.local[e.Path]
		hx := e.Hex()
		if fi != nil && fi.Size() == e.Size && trusted[e.Path] == hx {
			m.sum.Unchanged++
			m.unchanged[e.Path] = hx
			if !m.opts.DryRun && (treeindex.ModeOf(fi.Mode()) != e.Mode || !e.MTime.IsZero() && !fi.ModTime().Equal(e.MTime)) {
				retouch = append(retouch, e)
			}
			continue
		}
		j := &fileJob{e: e, hex: hx, exists: fi != nil}
		switch {
		case first[hx] != nil:
			j.how, j.dupOf = "dup", first[hx]
		case m.byHash[hx] != "":
			j.how, j.from = "copy", m.byHash[hx]
		case e.Data != nil || e.Size == 0:
			j.how = "inline"
		case e.Control == "" || m.wholeWithoutSeeds(e) || m.patchable(e):
			// A file with block sums and an old version at its path is
			// patched from it (mirror_delta.go), beside the scan, without
			// its control file.
			j.how = "whole"
		default:
			j.how = "sync"
		}
		if first[hx] == nil {
			first[hx] = j
		}
		if j.exists {
			m.sum.Updated++
		} else {
			m.sum.New++
		}
		m.total += e.Size
		m.jobs = append(m.jobs, j)
	}
	m.retouch(retouch)
	if err := m.findMoved(ctx); err != nil {
		return err
	}
	// The other control files the plan needs are fetched from now, while
	// the directories are made and local copies written.
	var list []*treeindex.Entry
	for _, j := range m.jobs {
		if j.how == "sync" && m.prefetched[j.e] == nil && !m.mayBeReady(j) {
			list = append(list, j.e)
		}
	}
	m.prefetch(ctx, list, "prefetch controls after plan")
	return nil
}

// findMoved hashes the local files whose size is that of a file to fetch
// or rebuild and whose content is not known yet: a file that moved or was
// copied in the new tree is then copied locally instead of downloaded (the
// scan would find a large one too, but a small one has no control file).
func (m *mirrorRun) findMoved(ctx context.Context) error {
	sizes := map[int64]bool{}
	for _, j := range m.jobs {
		if j.how == "whole" || j.how == "sync" {
			sizes[j.e.Size] = true
		}
	}
	known := map[string]bool{}
	for _, rel := range m.byHash {
		known[rel] = true
	}
	var cands []string
	for rel, fi := range m.local {
		if fi.Mode().IsRegular() && sizes[fi.Size()] && !known[rel] && m.knownHash(rel, fi) == "" && !m.triedHash(rel) {
			cands = append(cands, rel)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	q := newHashQueue(m, "hash moved")
	for _, rel := range cands {
		q.add(rel, m.local[rel].Size())
	}
	if err := q.wait(ctx); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	for _, rel := range cands {
		if h := m.freshHash(rel, m.local[rel], true); h != "" {
			m.byHash[h] = rel
		}
	}
	for _, j := range m.jobs {
		if (j.how == "whole" || j.how == "sync") && m.byHash[j.hex] != "" {
			j.how, j.from = "copy", m.byHash[j.hex]
		}
	}
	return nil
}

// ctlFetch is a control file fetched ahead of the plan.
type ctlFetch struct {
	done chan struct{} // closed when f or err is set
	f    *control.File
	err  error
}

// prefetchControls starts fetching, while local files are hashed, the
// control files of the files that will surely be rebuilt: no local file
// has their size (so none can be theirs, under any name), they are the
// first of their content in the index, and no earlier run left them
// complete. The others wait for the plan, so that no control file is
// fetched that the run does not need. controls takes what this fetched.
func (m *mirrorRun) prefetchControls(ctx context.Context) {
	sizes := map[int64]bool{}
	for _, fi := range m.local {
		if fi.Mode().IsRegular() {
			sizes[fi.Size()] = true
		}
	}
	// What earlier runs left in the parts directory: one read of it (by
	// staleTmps), not a stat per file (800 on go1.22.12 -> go1.24.5,
	// before the first request).
	left := m.partsLeft
	// By the hash's bytes, without a hex string per file: this runs
	// before the first control file is asked for.
	seen := make(map[[sha256.Size]byte]bool, len(m.idx.Entries))
	var list []*treeindex.Entry
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.File || len(e.SHA256) != sha256.Size {
			continue
		}
		sum := [sha256.Size]byte(e.SHA256)
		first := !seen[sum]
		seen[sum] = true
		if !first || e.Control == "" || e.Data != nil || e.Size == 0 || sizes[e.Size] {
			continue
		}
		if left[e.Hex()] {
			continue // perhaps ready (see ready)
		}
		if m.wholeWithoutSeeds(e) || m.patchable(e) {
			continue // no control file needed
		}
		list = append(list, e)
	}
	m.prefetch(ctx, list, "prefetch controls")
}

// seedlessWholeMax is the largest file that a first copy (DIR holds no
// local data: mirrorRun.seedless) fetches whole instead of rebuilding it
// from blocks. With nothing local to find, a rebuild only
// fetches every block after its control file: one request more, the
// block records parsed, every block hashed, a partial result and its
// state written. A file fetched whole keeps nothing of an interrupted
// fetch, though (as rsync without --partial): larger files are still
// rebuilt, so that a killed first copy resumes them where it stopped.
const seedlessWholeMax = 64 << 20

// hasLocalData reports whether DIR holds a regular file that is not
// empty: data the scan could find blocks in.
func (m *mirrorRun) hasLocalData() bool {
	for _, fi := range m.local {
		if fi.Mode().IsRegular() && fi.Size() > 0 {
			return true
		}
	}
	return false
}

// wholeWithoutSeeds reports whether e, a file with a control file, is
// fetched whole because the run has no local data to rebuild it from
// (seedless) and it is small enough, unless an earlier run left a partial
// result of it to resume.
func (m *mirrorRun) wholeWithoutSeeds(e *treeindex.Entry) bool {
	limit := int64(seedlessWholeMax)
	if m.opts.wholeMax > 0 {
		limit = m.opts.wholeMax
	}
	return m.seedless && e.Control != "" && e.Size <= limit &&
		m.partsListed && !m.partsLeft[e.Hex()]
}

// prefetch starts fetching the control files of list (a phase named
// phase), which controls takes: those with a record in a control pack
// many at a time from their packs (see fetchControlBatch), the others,
// and any a pack does not deliver, by their paths.
func (m *mirrorRun) prefetch(ctx context.Context, list []*treeindex.Entry, phase string) {
	if len(list) == 0 {
		return
	}
	if m.prefetched == nil {
		m.prefetched = make(map[*treeindex.Entry]*ctlFetch, len(list))
	}
	// The goroutines below read cs: m.prefetched may get more entries
	// (a later prefetch) meanwhile.
	cs := make(map[*treeindex.Entry]*ctlFetch, len(list))
	var packed, byPath []*treeindex.Entry
	for _, e := range list {
		cs[e] = &ctlFetch{done: make(chan struct{})}
		m.prefetched[e] = cs[e]
		if controlPacked(e) {
			packed = append(packed, e)
		} else {
			byPath = append(byPath, e)
		}
	}
	end := m.phase(phase)
	p := pool.New().WithMaxGoroutines(m.opts.Parallel)
	byItsPath := func(e *treeindex.Entry) {
		c := cs[e]
		defer close(c.done)
		c.f, c.err = m.control(ctx, e)
	}
	m.prefetching.Add(1)
	go func() {
		defer m.prefetching.Done()
		defer end()
		var (
			mu    sync.Mutex
			retry []*treeindex.Entry
		)
		batches, apart := controlBatches(packed)
		for _, b := range batches {
			p.Go(func() {
				failed := m.fetchControlBatch(ctx, b, cs)
				mu.Lock()
				retry = append(retry, failed...)
				mu.Unlock()
			})
		}
		for _, e := range append(byPath, apart...) {
			p.Go(func() { byItsPath(e) })
		}
		p.Wait()
		if len(retry) > 0 {
			p := pool.New().WithMaxGoroutines(m.opts.Parallel)
			for _, e := range retry {
				p.Go(func() { byItsPath(e) })
			}
			p.Wait()
		}
	}()
}

// saveStateSometimes saves the state from time to time, so that a run that
// is killed leaves most files it placed known to the next one (the others
// are hashed again): at most once a second, and not more than 5% of the
// time (the state of 100,000 files takes a while to write).
func (m *mirrorRun) saveStateSometimes() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.saved) < max(time.Second, m.saveEvery) {
		return
	}
	start := time.Now()
	if err := m.st.save(m.meta, m.opts.NoFsync); err != nil {
		m.logf("%v", err)
	}
	m.saved = time.Now()
	m.saveEvery = 20 * m.saved.Sub(start)
}

// knownHash returns the SHA-256 of a local file the state vouches for.
func (m *mirrorRun) knownHash(rel string, fi os.FileInfo) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.hashOf(rel, fi)
}

// record notes that the local file rel, as fi describes it, has hash hx.
func (m *mirrorRun) record(rel string, fi os.FileInfo, hx string) {
	m.mu.Lock()
	m.st.Files[rel] = fileState{Size: fi.Size(), MTime: fi.ModTime().UnixNano(), SHA256: hx}
	m.dirty = true
	m.mu.Unlock()
}

func (m *mirrorRun) workers() int {
	if m.opts.Workers > 0 {
		return m.opts.Workers
	}
	return 0
}

// place writes every file job. The files fetched whole (from packs or by
// their paths) need no local data: they are fetched from the start, beside
// the local copies, the control files and the seed scan, into directories
// made for them first (startEarly), and held: nothing is renamed into place
// before the scan has read the local files (a rename replaces one of them).
// Then the files the scan used are rebuilt, beside the files the scan
// turned into files fetched whole.
func (m *mirrorRun) place(ctx context.Context) (err error) {
	if len(m.jobs) == 0 {
		_, err := m.makeDirs(false)
		return err
	}
	m.progress("fetch", true)
	// Without syncfs each file the mirror writes itself is flushed as it
	// is verified (a batch would be flushed file by file anyway).
	m.flushEach = !osfile.HasSyncFS
	// With syncfs, the rebuilt files are flushed with the others, in
	// batches, not one by one by the sync pipeline: on a journaled file
	// system each fdatasync of a new file forces a journal commit of its
	// own (see docs/trees-measurements.md, "Durability, measured").
	m.flushLater = osfile.HasSyncFS && !m.opts.NoFsync
	m.hold(true)
	// Every verified file (held, queued) is flushed by the flusher, from
	// now on, beside the fetches, the scan and the rebuilds.
	// The flusher's renames end after it stops (deferred calls run last
	// first).
	defer m.renaming.Wait()
	stopFlusher := sync.OnceFunc(m.flusher())
	defer stopFlusher()
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.scanStarted = make(chan struct{})
	scanStarted := sync.OnceFunc(func() { close(m.scanStarted) })
	m.onScan = scanStarted
	// The seeds' order is worked out while the control files arrive
	// (the scan needs them all), not after.
	go m.localSorted()
	early, err := m.startEarly(ectx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil { // an error ends the run: the fetches stop, unplaced
			cancel()
			early()
		}
	}()
	defer scanStarted() // before the deferred wait above
	var syncs []*fileJob
	m.creating.Lock()
	end := m.phase("copy")
	for _, j := range m.jobs {
		if j.early || j.how == "dup" {
			continue
		}
		if m.ready(j) {
			m.verified(j)
			continue
		}
		switch j.how {
		case "copy":
			if err := m.copyLocal(ctx, j, filepath.Join(m.dir, filepath.FromSlash(j.from))); err != nil {
				m.fail(err)
			} else {
				m.verified(j)
			}
		case "inline":
			// Inline data came with the index: downloaded.
			if err := m.writeVerifiedBytes(j, j.e.Data); err != nil {
				m.fail(err)
			} else {
				m.fetched.Add(j.e.Size)
				m.verified(j)
			}
		case "sync":
			syncs = append(syncs, j)
		}
	}
	end()
	m.creating.Unlock()
	syncs, err = m.controls(ctx, syncs)
	if err != nil {
		return err
	}
	err = m.scan(ctx, syncs, true)
	scanStarted() // if there was nothing to scan
	if err != nil {
		return err
	}
	m.preferPacks(syncs)
	end = m.phase("dirs")
	if _, err := m.makeDirs(false); err != nil {
		return err
	}
	end()
	var late []*fileJob
	for _, j := range m.jobs {
		if !j.early && j.how == "whole" && j.tmp == "" {
			late = append(late, j)
		}
	}
	// Each list is taken before anything starts: the fetches and the
	// rebuilds write their own jobs' fields.
	rebuilt := m.rebuild(ctx)
	fetched := m.fetchSmall(ctx, late, " after scan", m.opts.Parallel)
	end = m.phase("place held")
	m.hold(false)
	end()
	fetched()
	early()
	rebuilt()
	// What is left is flushed now, beside the flusher's syncfs under way
	// (which started before it was complete, so does not cover it):
	// waiting for that one first put the whole of it on the critical
	// path. It is renamed once the flusher has stopped, so that a write
	// error that syncfs reported fails it too (an error is reported to
	// one syncfs only, whichever looks first).
	end = m.phase("flush")
	m.flushQueueAfter(stopFlusher)
	stopFlusher()
	m.renaming.Wait()
	end()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	for _, j := range m.jobs {
		if j.how == "dup" && !j.placed {
			src := j.dupOf
			if !src.placed {
				m.fail(fmt.Errorf("%s: its content (as %s) could not be fetched", j.e.Path, src.e.Path))
				continue
			}
			if err := m.copyLocal(ctx, j, filepath.Join(m.dir, filepath.FromSlash(src.e.Path))); err != nil {
				m.fail(err)
			} else {
				m.queue(j)
			}
		}
	}
	m.flushQueue()
	return nil
}

// startEarly makes the directories that can be made before the scan and
// starts fetching, into them, the files to fetch whole (small files, from
// packs or by their paths). A file whose directory cannot be made yet
// (something the scan may read is in the way) waits for the scan, as do
// the files the scan turns into files fetched whole (preferPacks). It
// returns a function that waits for the fetches.
func (m *mirrorRun) startEarly(ctx context.Context) (wait func(), err error) {
	var jobs []*fileJob
	for _, j := range m.jobs {
		if j.how == "whole" {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return func() {}, nil
	}
	end := m.phase("early dirs")
	ok, err := m.makeDirs(true)
	end()
	if err != nil {
		return nil, err
	}
	early := jobs[:0]
	for _, j := range jobs {
		if ok[path.Dir(j.e.Path)] {
			j.early = true
			early = append(early, j)
		}
	}
	// Second copies of their contents are made as soon as each is
	// verified (fetchedOne), where their directories are made too.
	for _, j := range m.jobs {
		if j.how == "dup" && j.dupOf.early && ok[path.Dir(j.e.Path)] {
			j.early = true
			j.dupOf.dups = append(j.dupOf.dups, j)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The control files and the scan's setup first: the scan waits
		// for them, these fetches run beside the scan. (Started with
		// the last control files, they took the cores from the scan's
		// setup: 26-160 ms from the last control file to the scan.)
		select {
		case <-m.scanStarted:
		case <-ctx.Done():
		}
		m.fetchSmall(ctx, early, "", m.opts.Parallel)()
		// Their flush starts now, beside the rest of the scan, not when
		// the scan ends: the disk is idle during the scan, and after it
		// every byte of the tree's changes (235 MB on go1.22.12 ->
		// go1.24.5, written at 360 MB/s there) waited for one syncfs
		// that ended 0.3-0.6 s after the last rebuild. The held files
		// it covers are renamed as soon as the hold ends.
		if m.holdFlush.Load() {
			m.wake()
		}
	}()
	return func() { <-done }, nil
}

// fetchSmall starts fetching jobs, files to fetch whole, from a goroutine
// of its own: those in packs many per request (fetchPacks), the others by
// their paths, Parallel requests at a time. Early jobs first look for a
// complete file an interrupted run left (ready). Each verified file goes to
// verified. It returns a function that waits for them all.
func (m *mirrorRun) fetchSmall(ctx context.Context, jobs []*fileJob, when string, parallel int) (wait func()) {
	if len(jobs) == 0 {
		return func() {}
	}
	end := m.phase("fetch whole" + when)
	p := pool.New().WithContext(ctx).WithMaxGoroutines(parallel)
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		var packs, patches []*fileJob
		for _, j := range jobs {
			if j.early && m.ready(j) {
				m.fetchedOne(ctx, j)
				continue
			}
			if packed(j) {
				if m.patchable(j.e) {
					patches = append(patches, j)
				} else {
					packs = append(packs, j)
				}
				continue
			}
			p.Go(func(ctx context.Context) error {
				m.fetchWholeQueued(ctx, j)
				return nil
			})
		}
		m.patchFiles(ctx, p, patches)
		m.fetchPacks(ctx, p, packs)
	}()
	// The phase ends when its last file is fetched, not when the caller
	// waits for it (after work of its own, perhaps much later).
	done := make(chan struct{})
	go func() {
		<-submitted
		p.Wait()
		end()
		close(done)
	}()
	return func() { <-done }
}

// fetchedOne takes a job's file from the fetches once it is verified:
// first the second copies of its content are made from it (while it is
// still the fetches' own, not yet held or renamed; a copy that fails is
// made again from its placed file at the end of place), then both go to
// verified.
func (m *mirrorRun) fetchedOne(ctx context.Context, j *fileJob) {
	for _, d := range j.dups {
		m.creating.RLock()
		err := m.copyLocal(ctx, d, j.tmp)
		m.creating.RUnlock()
		if err == nil {
			m.verified(d)
		}
	}
	j.dups = nil
	m.verified(j)
}

// hold sets whether the files fetched whole are held once verified
// (while the scan reads local files) or queued for their renames; ending
// the hold queues those held so far (those a flush covered meanwhile are
// renamed at once), holdRelease goroutines at once: the renames run beside
// the rebuilds and the files fetched after the scan, and one goroutine
// among theirs got so small a share of the two cores that its renames
// (3,490 on go1.22.12 -> go1.24.5) ended after the last rebuild.
func (m *mirrorRun) hold(on bool) {
	m.emu.Lock()
	held := m.held
	m.holding, m.held = on, nil
	m.holdFlush.Store(on)
	m.emu.Unlock()
	if !on && m.pendFiles.Load() > 0 {
		m.wake() // the files held since the last syncfs: see scanFlushBytes
	}
	eachInParallel(held, holdRelease, m.queue)
}

// eachInParallel calls fn for every job of jobs, on n goroutines (fewer
// for fewer jobs), each taking a contiguous share, and returns when all
// have returned.
func eachInParallel(jobs []*fileJob, n int, fn func(*fileJob)) {
	n = min(n, len(jobs))
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for _, j := range jobs[i*len(jobs)/n : (i+1)*len(jobs)/n] {
				fn(j)
			}
		})
	}
	wg.Wait()
}

// holdRelease is how many goroutines queue the held files when the hold
// ends.
const holdRelease = 4

// verified takes a job's verified file from the fetches: held (see hold)
// or queued for its rename. Either way the flusher flushes it from now on.
func (m *mirrorRun) verified(j *fileJob) {
	m.complete(j)
	m.emu.Lock()
	if m.holding {
		m.held = append(m.held, j)
		m.emu.Unlock()
		return
	}
	m.emu.Unlock()
	m.queue(j)
}

// rebuild starts rebuilding, through the sync pipeline, the files whose
// control file the scan used, the largest first (so that the last to
// finish is not a large file started late), from a goroutine of its own
// (so that neither these nor the files fetched whole wait for a free slot
// of the other). At most rebuildActive fetch and write at a time; a file
// whose blocks are all written lets the next one start while its
// whole-file hash ends and its flush waits for the disk, up to
// rebuildFlushing more of them. It returns a function that waits for them
// all.
func (m *mirrorRun) rebuild(ctx context.Context) (wait func()) {
	var jobs []*fileJob
	for _, j := range m.jobs {
		if j.how == "sync" && j.f != nil && j.tmp == "" {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return func() {}
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].e.Size > jobs[b].e.Size })
	end := m.phase("rebuild")
	active := min(rebuildActive, m.opts.Parallel)
	slots := make(chan struct{}, active)
	big := pool.New().WithContext(ctx).WithMaxGoroutines(active + rebuildFlushing)
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for _, j := range jobs {
			big.Go(func(ctx context.Context) error {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return nil
				}
				release := sync.OnceFunc(func() { <-slots })
				defer release()
				if err := m.syncOne(ctx, j, release); err != nil {
					m.fail(err)
				} else {
					j.synced = !m.flushLater // else flushed with its batch (queue)
					m.queue(j)
				}
				return nil
			})
		}
	}()
	done := make(chan struct{})
	go func() {
		<-submitted
		big.Wait()
		end() // when the last rebuild ends (see fetchSmall)
		close(done)
	}()
	return func() { <-done }
}

// How many files rebuild fetches and writes at once, and how many more
// may be ending (hashed, flushed, renamed) meanwhile.
const (
	rebuildActive   = 8
	rebuildFlushing = 16
)

// Verified files (rebuilt, fetched whole, copied, inline) are flushed to
// disk with one syncfs for many files on Linux instead of one fsync per
// file, and renamed into place only after that flush: a crash then leaves
// each path with its old file or its complete new one, as a flush per file
// would. The flusher starts a syncfs as soon as flushFiles files or
// flushBytes bytes were completed since the last one started, one at a
// time: the kernel writes their data together (one request for many small
// files) while the run goes on, and the renames find it allocated and
// written.
const (
	flushFiles = 16
	flushBytes = 4 << 20
	syncFSMin  = 16 // see syncFiles
	// While the files fetched whole are held (the scan runs), the
	// flusher waits for scanFlushBytes instead, whatever the number of
	// files, and flushes what is left as soon as the hold ends: nothing
	// held is renamed before then anyway, the scan is on the critical
	// path, and a syncfs during it also writes the partial results the
	// scan is filling (written again by the rebuilds) and, on a
	// journaled file system, commits the journal each time. On
	// go1.22.12 -> go1.24.5 the scan ended earlier than with a syncfs
	// per 16 files in every round measured (docs/trees-measurements.md,
	// "Seventh session: flush"). One syncfs does run during the scan, once the
	// files fetched beside it are all there (see startEarly).
	scanFlushBytes = 32 << 20
)

// complete notes that a job's file is complete (its content verified and
// written, its descriptor closed): any syncfs started from now on covers
// it. It wakes the flusher when enough was completed since the last
// syncfs started. Only the first call for a job counts.
func (m *mirrorRun) complete(j *fileJob) {
	if j.done {
		return
	}
	j.done = true
	j.after = m.flushes.Load()
	if m.kick == nil || m.opts.NoFsync || j.synced {
		return
	}
	files, size := m.pendFiles.Add(1), m.pendBytes.Add(j.e.Size)
	if m.holdFlush.Load() {
		if size >= scanFlushBytes {
			m.wake()
		}
		return
	}
	if files >= int64(cmp.Or(m.opts.batch, flushFiles)) || size >= flushBytes {
		m.wake()
	}
}

// wake wakes the flusher, if there is one, for a syncfs.
func (m *mirrorRun) wake() {
	if m.kick == nil {
		return
	}
	select {
	case m.kick <- struct{}{}:
	default: // a flush is due already
	}
}

// flushed reports whether a syncfs that started after the job's file was
// complete has ended.
func (m *mirrorRun) flushed(j *fileJob) bool {
	return j.done && m.flushedTo.Load() > j.after && !m.flushFailed.Load()
}

// queue renames a job's verified file into place: now when it is flushed
// already (or need not be), else after the flusher's next syncfs (or the
// flush at the end of place: flushQueue).
func (m *mirrorRun) queue(j *fileJob) {
	m.complete(j)
	if m.opts.NoFsync || j.synced || m.flushed(j) {
		m.finishJob(j)
		return
	}
	m.qmu.Lock()
	m.queued = append(m.queued, j)
	m.qmu.Unlock()
}

// flusher starts, where files are flushed with syncfs, a goroutine that
// flushes the completed files (see complete) with one syncfs whenever
// enough of them are waiting, and renames those queued into place, while
// the fetches, the scan and the rebuilds go on: none of them waits for a
// flush. It returns a function that stops it (after the syncfs under way);
// what is left is flushed by flushQueue.
func (m *mirrorRun) flusher() (stop func()) {
	if !osfile.HasSyncFS || m.opts.NoFsync || m.flushEach {
		return func() {}
	}
	kick := make(chan struct{}, 1)
	m.kick = kick
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-kick:
			}
			end := m.phase("flush batch")
			m.syncAll()
			end()
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// syncAll flushes the file system (one syncfs), which covers every file
// completed before it starts, then renames into place the queued files it
// covered. Files it could not flush stay where they are (verified; a later
// run takes them) and count as failed.
func (m *mirrorRun) syncAll() {
	m.qmu.Lock()
	batch := m.queued
	m.queued = nil
	m.qmu.Unlock()
	if m.flushFailed.Load() {
		for _, j := range batch {
			m.fail(fmt.Errorf("%s: not flushed: an earlier flush failed", j.e.Path))
		}
		return
	}
	m.pendFiles.Store(0)
	m.pendBytes.Store(0)
	n := m.flushes.Add(1) // before the flush starts: see complete
	m.event("flush", nil)
	if err := m.syncFS(); err != nil {
		// A write error is reported to one syncfs only: no later one
		// can vouch for the files this one covered.
		m.flushFailed.Store(true)
		for _, j := range batch {
			m.fail(fmt.Errorf("%s: %w", j.e.Path, err))
		}
		return
	}
	m.event("flushed", nil)
	m.flushedUpTo(n)
	// Files queued during the flush that it covers go now too.
	m.qmu.Lock()
	rest := m.queued[:0]
	for _, j := range m.queued {
		if m.flushed(j) {
			batch = append(batch, j)
		} else {
			rest = append(rest, j)
		}
	}
	m.queued = rest
	m.qmu.Unlock()
	// The held files, flushed at the end of the hold (thousands), are
	// renamed by holdRelease goroutines, as hold does, and beside the
	// next syncfs: on go1.22.12 -> go1.24.5 the renames after the first
	// (3,500 files) took 0.1 s, in which the last rebuilt files waited
	// for a syncfs that could not start.
	m.renaming.Go(func() {
		eachInParallel(batch, min(holdRelease, len(batch)/64+1), m.finishJob)
	})
}

// flushedUpTo records that syncfs number n has ended. Syncfs calls may
// overlap (the final flush runs beside the flusher's: see place) and end
// in any order: flushedTo only grows.
func (m *mirrorRun) flushedUpTo(n int64) {
	for {
		if old := m.flushedTo.Load(); old >= n || m.flushedTo.CompareAndSwap(old, n) {
			return
		}
	}
}

// syncFS flushes the file system of Dir and the parts directory (one
// syncfs), through the descriptor Mirror opened before anything was
// written: it reports every write error since.
func (m *mirrorRun) syncFS() error {
	if m.fsys == nil { // a mirrorRun made without Mirror (tests)
		return osfile.SyncFS(m.parts)
	}
	return m.fsys.Sync()
}

// flushQueue places the files queued so far (see placeBatch).
func (m *mirrorRun) flushQueue() { m.flushQueueAfter(nil) }

// flushQueueAfter is flushQueue calling before (when not nil) between the
// flush and the renames.
func (m *mirrorRun) flushQueueAfter(before func()) {
	m.qmu.Lock()
	batch := m.queued
	m.queued = nil
	m.qmu.Unlock()
	m.placeBatch(batch, before)
}

// placeBatch flushes the files of batch to disk and renames them into
// place, calling before (when not nil) in between. Files that cannot be
// flushed stay where they are (verified; a later run takes them) and
// count as failed.
func (m *mirrorRun) placeBatch(batch []*fileJob, before func()) {
	if len(batch) == 0 {
		return
	}
	err := errors.New("an earlier flush failed")
	if !m.flushFailed.Load() {
		err = m.syncFiles(batch)
	}
	if before != nil {
		before()
	}
	if err == nil && m.flushFailed.Load() {
		// Reported to the flusher's syncfs that ran beside this flush
		// (see place): it may be this file's.
		err = errors.New("not flushed: a syncfs beside its flush reported a write error")
	}
	if err != nil {
		for _, j := range batch {
			m.fail(fmt.Errorf("%s: %w", j.e.Path, err))
		}
		return
	}
	for _, j := range batch {
		m.finishJob(j)
	}
}

// syncFiles flushes the verified files of batch to stable storage: the
// whole file system at once where it can (they are all in the parts
// directory), else file by file. A batch of fewer than syncFSMin files is
// flushed file by file too: a syncfs waits for every dirty file of the
// file system, other programs' included (2.5 s for the last few files of
// a mirror on a busy machine, against 13 ms on a quiet one).
func (m *mirrorRun) syncFiles(batch []*fileJob) error {
	if osfile.HasSyncFS && len(batch) >= syncFSMin {
		m.event("flush", nil)
		if err := m.syncFS(); err != nil {
			return err
		}
		m.event("flushed", nil)
		return nil
	}
	var paths []string
	if m.opts.hook != nil {
		for _, j := range batch {
			paths = append(paths, j.tmp)
		}
	}
	m.event("flush", paths)
	for _, j := range batch {
		f, err := os.Open(j.tmp)
		if err != nil {
			return err
		}
		err = osfile.Sync(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	m.event("flushed", paths)
	return nil
}

// event tells the tests' hook of a flush ("flush" before it, "flushed"
// after it: of the files at paths, or of the whole file system when paths
// is nil), a rename into place ("rename": the verified file, then its
// path), the end of the seed scan ("scanned") and the run's last flush
// ("final").
func (m *mirrorRun) event(ev string, paths []string) {
	if m.opts.hook != nil {
		m.opts.hook(ev, paths)
	}
}

// ready reports whether an earlier, interrupted run left the job's content
// complete and verified in the parts directory or beside its path (a file
// fetched whole and held for the flush; see staleTmps), and takes it.
//
// Only what the parts directory held when the run started (partsLeft) is
// looked at there: on a first run of the divergent Go pair, that spared
// 4,700 failed lookups of names that were not there.
func (m *mirrorRun) ready(j *fileJob) bool {
	p := m.partPath(j)
	if j.how != "sync" {
		p += ".tmp"
	}
	if t := m.tmpBeside(j.e.Path); m.stale[t] && m.readyAt(j, t) {
		return true
	}
	return m.leftInParts(p) && m.readyAt(j, p)
}

// leftInParts reports whether the file at p, in the parts directory, may
// have been left there by an earlier run: it was listed when this run
// started, or the directory could not be listed.
func (m *mirrorRun) leftInParts(p string) bool {
	return !m.partsListed || m.partsLeft[filepath.Base(p)]
}

// readyAt reports whether the file at p holds the job's content, and takes
// it.
func (m *mirrorRun) readyAt(j *fileJob, p string) bool {
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != j.e.Size {
		return false
	}
	if h, _, err := m.hashLocal(p); err != nil || h != j.hex {
		return false
	}
	j.tmp = p
	return true
}

// controls fetches the control files of the jobs to rebuild, many at once,
// and checks that each describes the file the index lists. A job whose
// control file cannot be used is fetched whole instead.
func (m *mirrorRun) controls(ctx context.Context, jobs []*fileJob) ([]*fileJob, error) {
	defer m.phase("controls")()
	var rest []*treeindex.Entry
	for _, j := range jobs {
		if m.prefetched[j.e] == nil {
			rest = append(rest, j.e)
		}
	}
	m.prefetch(ctx, rest, "fetch controls")
	p := pool.New().WithContext(ctx).WithMaxGoroutines(m.opts.Parallel)
	for _, j := range jobs {
		p.Go(func(ctx context.Context) error {
			c := m.prefetched[j.e]
			var f *control.File
			var err error
			select {
			case <-c.done:
				f, err = c.f, c.err
			case <-ctx.Done():
				err = ctx.Err()
			}
			if err != nil {
				m.logf("%s: %v; fetching it whole", j.e.Path, err)
				j.how = "whole"
				return nil
			}
			j.f = f
			return nil
		})
	}
	p.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	var out []*fileJob
	for _, j := range jobs {
		if j.f != nil {
			out = append(out, j)
		}
	}
	return out, nil
}

// control fetches and checks the control file of e by its path.
func (m *mirrorRun) control(ctx context.Context, e *treeindex.Entry) (*control.File, error) {
	cf, err := m.src.get(ctx, e.Control, time.Time{}, DefaultMaxControlSize)
	if err != nil {
		return nil, err
	}
	return parseControl(e, cf.Body)
}

// parseControl reads the control file of e from b and checks that it
// describes e's file.
func parseControl(e *treeindex.Entry, b []byte) (*control.File, error) {
	f, err := control.Read(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if f.Length != e.Size || f.SHA256 != nil && !bytes.Equal(f.SHA256, e.SHA256) {
		return nil, fmt.Errorf("control file %s describes another file (length %d) than the index lists", e.Control, f.Length)
	}
	return f, nil
}

// partPath is where the content of a job is assembled, in the parts
// directory, named by its content: for a rebuilt file, the output of its
// sync (which writes PATH.part and PATH.part.state beside it; see
// partFile); for the others, PATH.tmp is written. The parts directory is
// flat: a directory per file would be one more inode to create (and to
// free at the end) per rebuilt file, and creating an inode is what costs
// most on ext4 without a journal (see docs/trees.md).
func (m *mirrorRun) partPath(j *fileJob) string {
	return filepath.Join(m.parts, j.hex)
}

// scan looks for the blocks of every job to rebuild in every local file,
// with one scan, writing what it finds into each job's partial result
// (write set) or only counting it (dry run).
func (m *mirrorRun) scan(ctx context.Context, jobs []*fileJob, write bool) error {
	if len(jobs) == 0 {
		return nil
	}
	targets := make([]seedscan.Target, len(jobs))
	parts := make([]*partFile, len(jobs))
	var created sync.WaitGroup // the parts created beside the scan
	partsErr := func() error { return nil }
	defer func() {
		created.Wait()
		for _, p := range parts {
			if p != nil {
				p.close()
			}
		}
	}()
	for i, j := range jobs {
		targets[i].Control = j.f
		targets[i].Matches = stages.NewMatches(j.f.Blocks())
	}
	if write {
		// A handful of system calls per file, none of which needs the
		// others: several files at once. The files fetched beside the
		// scan wait meanwhile (see creating). A partial result an earlier
		// run left may hold blocks the scan then need not look for: those
		// are opened first. The others are new, and are created while the
		// scan runs (creating them took 0.09 s of the critical path on
		// go1.22.12 -> go1.24.5, 860 files): a block found for one of them
		// waits until it is there.
		left, err := m.openParts(jobs, parts, targets)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			ready := make([]chan struct{}, len(jobs))
			failed := make([]error, len(jobs))
			for _, i := range left {
				ready[i] = make(chan struct{})
				targets[i].Write = func(b stages.Block) error {
					<-ready[i]
					if failed[i] != nil {
						return failed[i]
					}
					return parts[i].pt.WriteBlock(b)
				}
			}
			m.creating.Lock()
			end := m.phase("create parts")
			created.Add(1)
			go func() {
				defer created.Done()
				defer m.creating.Unlock()
				defer end()
				p := pool.New().WithMaxGoroutines(partsParallel)
				for _, i := range left {
					p.Go(func() {
						defer close(ready[i])
						pf, err := openPartFresh(m.partPath(jobs[i]), jobs[i].f, 0o644, m.logf, m.freshPart(jobs[i]))
						if err != nil {
							failed[i] = err
							return
						}
						pf.resume(targets[i].Matches, 0)
						parts[i] = pf
					})
				}
				p.Wait()
			}()
			// A scan that found nothing for a file whose part could not be
			// created must fail all the same.
			partsErr = func() error {
				created.Wait()
				for _, i := range left {
					if failed[i] != nil {
						return failed[i]
					}
				}
				return nil
			}
		}
	}
	// Seeds: the old versions of the targets first, then every other local
	// file: in full those the new tree does not keep unchanged, and those
	// it keeps at block boundaries only (by default; in full with
	// ScanUnchanged, not at all with SkipUnchanged). The scan of a layout
	// stops once all its blocks are found. A kept file shorter than two
	// blocks is not read at block boundaries: a pair of blocks would reach
	// past its end, so it could give no more than the last block or two of
	// a target that ends with its data, and half a Go tree's files are that
	// small (opening them cost more than scanning the rest).
	minBS, maxBS := int64(math.MaxInt64), int64(0)
	for _, j := range jobs {
		minBS = min(minBS, int64(j.f.Blocksize))
		maxBS = max(maxBS, int64(j.f.Blocksize))
	}
	var seeds []stages.Seed
	// The seeds are read a segment at a time, several segments of a file
	// in a row: kept open meanwhile, a few at once (a tree has more files
	// than a process may hold open).
	files := osfile.NewReaders(seedFilesOpen)
	defer files.Close()
	var drop []dropSeed // read for the last time by the scan (see dropCache)
	// Drops as the scan goes, clear of what Extend reads (see scanDropper).
	early := newScanDropper(seedscan.ExtendReach * maxBS)
	// What the hashing learnt of the files it read (none with a state
	// that vouches for them): an aligned seed is then read only where a
	// block looked for may be (stages.Seed.ChunkSums).
	m.mu.Lock()
	chunkSums := m.chunkSums
	m.chunkSums = nil
	hashed := m.hashed
	m.mu.Unlock()
	for rel, sums := range chunkSums {
		m.learnChunks(hashed[rel], sums)
	}
	// Kept files with neither are read at block boundaries as the scan
	// goes, and what it reads gives theirs for the next run.
	stored := m.storedChunks()
	var collect chunkCollector
	seen := map[string]bool{}
	add := func(rel string, aligned bool) {
		fi := m.local[rel]
		if seen[rel] || fi == nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			return
		}
		seen[rel] = true
		p := filepath.Join(m.dir, filepath.FromSlash(rel))
		var sums []uint32
		if aligned {
			if sums = chunkSums[rel]; sums == nil {
				sums = stored[m.unchanged[rel]]
			}
			if sums == nil && write {
				collect.expect(len(seeds), fi.Size(), m.unchanged[rel])
			}
		}
		seeds = append(seeds, stages.Seed{Name: p, R: seedFile{files, p}, Size: fi.Size(), Aligned: aligned, ChunkSums: sums})
		if m.unchanged[rel] == "" && fi.Size() >= dropCacheMin {
			drop = append(drop, dropSeed{p, fi.Size()})
			early.add(len(seeds)-1, p, fi.Size())
		}
		m.scanTotal += fi.Size()
	}
	for _, j := range jobs {
		add(j.e.Path, false)
	}
	for _, rel := range m.localSorted() {
		switch {
		case m.unchanged[rel] == "" || m.opts.ScanUnchanged:
			add(rel, false)
		case !m.opts.SkipUnchanged && m.local[rel].Size() >= 2*minBS:
			add(rel, true)
		}
	}
	m.scanTotal *= int64(seedscan.Scans(targets))
	m.progress("scan", true)
	end := m.phase("scan")
	if m.onScan != nil {
		m.onScan()
	}
	if m.opts.seeds != nil {
		m.opts.seeds(seeds)
	}
	skim := int64(mirrorSkim)
	if m.opts.NoSkim {
		skim = 0
	}
	so := seedscan.Options{
		Workers: m.opts.Workers,
		Skim:    skim,
		Progress: func(n int64) {
			m.scanned.Add(n)
			m.progress("scan", false)
		},
	}
	if write {
		so.Scanned = early.scanned
		if collect.files != nil {
			so.ChunkSums = collect.report
		}
	}
	ms, err := seedscan.Scan(ctx, targets, seeds, so)
	collect.complete(m.learnChunks)
	end()
	m.event("scanned", nil)
	if err == nil {
		// Every part is there before Extend looks at what was found.
		err = partsErr()
	}
	if err == nil {
		// Blocks between edits, which the scan's two-block rule misses.
		end = m.phase("extend")
		_, err = seedscan.Extend(ctx, targets, ms, seeds, seedscan.Options{Workers: m.opts.Workers})
		end()
	}
	if err != nil {
		return fmt.Errorf("mirror: scan local files: %w", err)
	}
	if write {
		m.dropCache(drop)
	}
	// What the scan found stays in the partial results, open and locked,
	// for the rebuilds (syncOne hands each to its Sync). No state is
	// saved: a state file would be one more inode per rebuilt file, and
	// creating inodes is what costs most here (see docs/trees.md). A run
	// killed before a rebuild has saved a state of its own leaves the
	// partial result, which the next run sets aside and scans as a seed.
	for i, j := range jobs {
		if ms == nil || ms[i] == nil {
			continue
		}
		pl := stages.Blueprint(&j.f.Header, ms[i])
		m.reused.Add(pl.Reused)
		j.reused = pl.Reused
		j.part, parts[i] = parts[i], nil
		if !write {
			m.framesSaved.Add(m.framesSaving(j, pl.Missing))
		}
	}
	return nil
}

// mirrorSkim is the scan's stages.DeltaOptions.Skim unless
// MirrorOptions.NoSkim. On go1.22.12 -> go1.24.5 the old Go executables
// (110 MB, 70 % of what the scan reads at every offset) share 8 % of their
// data with the new ones, in short runs: skimming takes 0.09 s of CPU off
// a dry run of 0.97 s (the scan phase 0.29 s -> 0.24 s) and finds 0.18 MB
// less locally; 0.16 MB less on go1.24.4 -> go1.24.5. Going back at most
// Skim bytes when a window matches (not to where skimming began) looks
// at 20 % and 33 % fewer offsets on these pairs and finds 0.06 MB and
// 0.13 MB less (docs/trees.md, "Limits": skimming).
const mirrorSkim = 64 << 10

// openParts opens, for the scan, the partial results of jobs that earlier
// runs left (their blocks are marked in targets' Matches and not looked
// for again), and returns the indices of the jobs that have none.
func (m *mirrorRun) openParts(jobs []*fileJob, parts []*partFile, targets []seedscan.Target) ([]int, error) {
	var left, old []int
	for i, j := range jobs {
		if m.partsLeft[filepath.Base(m.partPath(j))+".part"] {
			old = append(old, i)
		} else {
			left = append(left, i)
		}
	}
	if len(old) == 0 {
		return left, nil
	}
	m.creating.Lock()
	defer m.creating.Unlock()
	defer m.phase("open parts")()
	p := pool.New().WithErrors().WithMaxGoroutines(partsParallel)
	for _, i := range old {
		p.Go(func() error {
			pf, err := openPart(m.partPath(jobs[i]), jobs[i].f, 0o644, m.logf)
			if err != nil {
				return err
			}
			pf.resume(targets[i].Matches, 0)
			parts[i] = pf
			targets[i].Write = pf.pt.WriteBlock
			return nil
		})
	}
	if err := p.Wait(); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	return left, nil
}

// freshPart reports whether the parts directory held nothing of the
// job's partial result when the run started: no partial result, no state,
// no set-aside seed (see openPartFresh).
func (m *mirrorRun) freshPart(j *fileJob) bool {
	if !m.partsListed {
		return false
	}
	base := filepath.Base(m.partPath(j)) + ".part"
	return !m.partsLeft[base] && !m.partsLeft[filepath.Base(statePath(base))] && !m.partsLeft[base+".seed"]
}

// partsParallel is how many partial results the scan opens at once: file
// system calls, mostly waiting.
const partsParallel = 8

// closeParts closes the partial results the scan left open that no
// rebuild took (a job fetched from a pack instead, a run that failed).
func (m *mirrorRun) closeParts() {
	for _, j := range m.jobs {
		if j.part != nil {
			j.part.close()
			j.part = nil
		}
	}
}

// seedFile reads a seed file through the scan's open files.
type seedFile struct {
	files *osfile.Readers
	path  string
}

func (s seedFile) ReadAt(b []byte, off int64) (int, error) { return s.files.ReadAt(s.path, b, off) }

// seedFilesOpen is how many seed files a scan keeps open: a few per
// worker, which reads its segments in order.
const seedFilesOpen = 32

// syncOne rebuilds a job's file through the sync pipeline, from its partial
// result (what the scan found) and the missing blocks.
//
// written is called once every block is written (see SyncOptions.written),
// or not at all.
func (m *mirrorRun) syncOne(ctx context.Context, j *fileJob, written func()) error {
	src, done, err := m.src.ranges(ctx, j.e.Path, j.e.Size)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", j.e.Path, ErrFetch, err)
	}
	defer done()
	if fs, release := m.framed(ctx, j, src); fs != nil {
		src = fs
		defer func() {
			release()
			if err := fs.Failed(); err != nil {
				m.logf("%s: %v; its blocks came as they are", j.e.Path, err)
			}
			st := fs.Stats()
			m.frames.Add(st.Frames)
			m.framesDecoded.Add(st.Decoded)
		}()
	}
	var last atomic.Int64
	h, err := m.hasher(j.f.StrongAlgorithm)
	if err != nil {
		return fmt.Errorf("%s: %w", j.e.Path, err)
	}
	part := j.part
	j.part = nil
	if part != nil {
		defer part.close()
	}
	var attrs *resultAttrs
	if osfile.TimesExact {
		attrs = &resultAttrs{mode: j.e.Mode, mtime: j.e.MTime}
	}
	s, err := Sync(ctx, SyncOptions{
		Hasher:     h,
		Control:    j.f,
		Output:     m.partPath(j),
		part:       part,
		written:    written,
		attrs:      attrs,
		Source:     src,
		Workers:    m.opts.Workers,
		NoFsync:    m.opts.NoFsync,
		flushLater: m.flushLater,
		Progress: func(p Progress) {
			if p.Phase == "fetch" {
				if d := p.Done - last.Swap(p.Done); d > 0 {
					m.fetched.Add(d)
				}
				m.progress("fetch", false)
			}
		},
	})
	if s != nil {
		if d := s.Fetched - last.Load(); d > 0 {
			m.fetched.Add(d)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", j.e.Path, err)
	}
	j.tmp = m.partPath(j)
	if attrs != nil {
		// Its mode and mtime are set: finishJob need not set them by
		// its path.
		j.fi = attrs.info
	}
	return nil
}

// hasher returns the run's Hasher for alg, shared by every rebuilt file.
func (m *mirrorRun) hasher(alg strong.Algorithm) (*simd.Hasher, error) {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	if h := m.hashers[alg]; h != nil {
		return h, nil
	}
	h, err := simd.NewHasher(alg, simd.Options{})
	if err != nil {
		return nil, err
	}
	if m.hashers == nil {
		m.hashers = map[strong.Algorithm]*simd.Hasher{}
	}
	m.hashers[alg] = h
	return h, nil
}

// fetchWhole downloads a job's file in one range, verifying it as it goes:
// its compressed frames when it has some (fetchFramed), or else the file.
func (m *mirrorRun) fetchWhole(ctx context.Context, j *fileJob) error {
	if m.fetchFramed(ctx, j) {
		m.progress("fetch", false)
		return nil
	}
	src, done, err := m.src.ranges(ctx, j.e.Path, j.e.Size)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", j.e.Path, ErrFetch, err)
	}
	defer done()
	var werr error
	err = src.ReadRanges(ctx, []source.Range{{Start: 0, End: j.e.Size}}, func(r source.Range, data io.Reader) error {
		werr = m.writeVerified(j, &countingReader{r: data, n: &m.fetched})
		return werr
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %w", j.e.Path, ErrFetch, err)
	}
	m.progress("fetch", false)
	return nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// copyLocal copies a local file holding the job's content. Only a regular
// file is opened: one replaced by a FIFO since it was hashed is refused at
// once instead of waiting for a writer.
func (m *mirrorRun) copyLocal(ctx context.Context, j *fileJob, from string) error {
	f, _, err := osfile.OpenRegular(ctx, from)
	if err != nil {
		return fmt.Errorf("%s: %w", j.e.Path, err)
	}
	defer f.Close()
	if err := m.writeVerified(j, f); err != nil {
		return err
	}
	m.reused.Add(j.e.Size)
	return nil
}

// writeVerified writes r into the job's temporary file and checks its
// length and SHA-256 against the index.
func (m *mirrorRun) writeVerified(j *fileJob, r io.Reader) error {
	w, tmp, over, err := m.tmpFile(j)
	if err != nil {
		return fmt.Errorf("%s: %w", j.e.Path, err)
	}
	h := sha256.New()
	b := m.buf()
	dst := io.MultiWriter(w, h)
	var chunks *rollsum.Chunks // for the next runs (mirror_chunks.go)
	if j.e.Size >= 2*rollsum.ChunkSize {
		chunks = new(rollsum.Chunks)
		dst = io.MultiWriter(w, h, chunks)
	}
	n, err := io.CopyBuffer(dst, io.LimitReader(r, j.e.Size+1), *b)
	m.bufs.Put(b)
	if err == nil && (n != j.e.Size || !bytes.Equal(h.Sum(nil), j.e.SHA256)) {
		err = m.mismatch(j, n)
	}
	if err == nil && chunks != nil {
		m.learnChunks(j.hex, chunks.Sums())
	}
	return m.finishTmp(j, w, tmp, over, n, err)
}

// writeVerifiedBytes writes content held in memory (a decoded pack
// record, inline data) into the job's temporary file once its length and
// SHA-256 match the index: it is hashed while it is in the cache, right
// after it was decoded, and written in one call; content that does not
// match creates no file.
func (m *mirrorRun) writeVerifiedBytes(j *fileJob, content []byte) error {
	if n := int64(len(content)); n != j.e.Size || sha256.Sum256(content) != [sha256.Size]byte(j.e.SHA256) {
		return fmt.Errorf("%s: %w", j.e.Path, m.mismatch(j, n))
	}
	w, tmp, over, err := m.tmpFile(j)
	if err != nil {
		return fmt.Errorf("%s: %w", j.e.Path, err)
	}
	n, err := w.Write(content)
	if err == nil && len(content) >= 2*rollsum.ChunkSize {
		var chunks rollsum.Chunks // for the next runs (mirror_chunks.go)
		chunks.Write(content)
		m.learnChunks(j.hex, chunks.Sums())
	}
	return m.finishTmp(j, w, tmp, over, int64(n), err)
}

// mismatch is the error of content of n bytes that does not match the
// index.
func (m *mirrorRun) mismatch(j *fileJob, n int64) error {
	return fmt.Errorf("got %d bytes that do not match the index (%d bytes, SHA-256 %s…): %w", n, j.e.Size, j.hex[:12], ErrVerify)
}

// finishTmp completes the temporary file w at tmp that n verified bytes
// were written to (err: why they were not): its length when it was
// written over (see tmpFile), its mode and mtime, and its FileInfo in j.
// On error, the file is removed.
func (m *mirrorRun) finishTmp(j *fileJob, w *os.File, tmp string, over bool, n int64, err error) error {
	if err == nil && over {
		// Written over from its start: it had the target's length
		// already, or else is cut to the bytes written.
		var fi os.FileInfo
		if fi, err = w.Stat(); err == nil && fi.Size() != n {
			err = w.Truncate(n)
		}
	}
	// Mode and mtime now. The file is flushed later, with many others
	// (one syncfs: see complete), before it is renamed into place; or
	// now, where there is no syncfs (see place). Its writeback is not
	// started file by file: the flusher's syncfs writes many small files
	// in one request.
	exact := osfile.TimesExact
	if err == nil && !exact {
		err = w.Chmod(j.e.Mode)
	}
	if err == nil && m.flushEach && !m.opts.NoFsync {
		err = osfile.Sync(w)
		j.synced = err == nil
	}
	// The mtime in nanoseconds, and the file's FileInfo, through its
	// descriptor where the system allows (no lookups of its path). A file
	// created with its mode (see tmpFile) needs no chmod.
	if err == nil && exact && !j.e.MTime.IsZero() {
		err = osfile.SetTimes(w, j.e.MTime, j.e.MTime)
	}
	var fi os.FileInfo
	if err == nil && exact {
		fi, err = w.Stat()
	}
	if err == nil && exact && fi.Size() != j.e.Size {
		// Written over a longer file (see tmpFile).
		err = fmt.Errorf("%s is %d bytes long after %d were written: %w", tmp, fi.Size(), j.e.Size, ErrVerify)
	}
	if err == nil && exact && fi.Mode()&modeBits != j.e.Mode&modeBits {
		// Taken over from an earlier file, or narrowed by the umask.
		err = w.Chmod(j.e.Mode)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil && !exact && !j.e.MTime.IsZero() {
		err = os.Chtimes(tmp, j.e.MTime, j.e.MTime) // nanoseconds; futimes has microseconds
	}
	if err == nil && !exact {
		fi, err = os.Lstat(tmp)
		if err == nil && fi.Size() != j.e.Size {
			err = fmt.Errorf("%s is %d bytes long after %d were written: %w", tmp, fi.Size(), j.e.Size, ErrVerify)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", j.e.Path, err)
	}
	j.tmp, j.fi = tmp, fi
	return nil
}

// tmpFile creates the file that the verified content of a job is written
// to, and returns it and its path: files fetched whole and copies of files
// placed in this run are written after the directories are made, beside
// their path (several copies of one content each get their own); local
// copies and inline data before, in the parts directory, named by their
// content. A job the scan opened a partial result for that is fetched
// whole after all (its pack record is shorter than what the scan left
// missing plus rebuildCost: preferPacks) takes that file instead: an inode
// the run has made already (see docs/trees.md, "What a mirror writes"). It is written over from its
// start, not emptied first: emptying it freed the blocks reserved for it
// and the scan's data in the page cache, only to allocate them again, and
// on ext4 a file emptied and written again is flushed when it is closed
// (auto_da_alloc). finishTmp cuts it to the bytes written. over reports
// such a file.
func (m *mirrorRun) tmpFile(j *fileJob) (f *os.File, tmp string, over bool, err error) {
	if p := j.part; p != nil && p.f != nil {
		j.part = nil
		p.removeState()
		_ = p.stopWriteback()
		f := p.f
		p.f = nil // the file stays open: it is taken, with its lock
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			return f, p.path, true, nil
		}
		f.Close()
	}
	tmp = m.partPath(j) + ".tmp"
	if j.how == "whole" || j.how == "dup" {
		tmp = m.tmpBeside(j.e.Path)
	}
	// Two system calls where os.OpenFile makes six (see osfile.OpenWrite).
	f, err = osfile.OpenWrite(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, j.e.Mode&modeBits)
	return f, tmp, false, err
}

// modeBits are the bits of a file's mode that a mirror sets.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// tmpSuffix ends the names of the files fetched whole while they are
// written and verified, beside their final path (so that the rename stays
// in one directory, and parallel fetches do not all create and rename
// files in one directory). A run that is killed may leave them; the next
// run removes them.
const tmpSuffix = ".zsyncpipe-tmp"

// tmpBeside returns the temporary path beside the file at rel, or one in
// the parts directory when the name would be too long.
func (m *mirrorRun) tmpBeside(rel string) string {
	dir, base := path.Split(rel)
	if m.inIndex(dir+"."+base+tmpSuffix) || len(base)+len("."+tmpSuffix) > 255 {
		return filepath.Join(m.parts, fmt.Sprintf("%x%s", sha256.Sum256([]byte(rel)), tmpSuffix))
	}
	return filepath.Join(m.dir, filepath.FromSlash(dir), "."+base+tmpSuffix)
}

// finishJob sets the mode and mtime of a job's verified file and renames it
// into place, replacing whatever is there.
func (m *mirrorRun) finishJob(j *fileJob) {
	dst := filepath.Join(m.dir, filepath.FromSlash(j.e.Path))
	var err error
	if j.fi == nil {
		err = setAttrs(j.tmp, j.e.Mode, j.e.MTime)
	}
	if err == nil && m.local[j.e.Path] != nil && m.local[j.e.Path].IsDir() {
		err = m.clearForFile(dst) // only a directory there needs removing
	}
	if err == nil {
		m.touched.Store(true)
		m.event("rename", []string{j.tmp, dst})
		// One system call (os.Rename looks dst up first).
		if err = osfile.Rename(j.tmp, dst); err != nil {
			// A directory the walk did not see (made since)?
			if fi, lerr := os.Lstat(dst); lerr == nil && fi.IsDir() {
				if err = m.clearForFile(dst); err == nil {
					err = osfile.Rename(j.tmp, dst)
				}
			}
		}
	}
	if err != nil {
		m.fail(fmt.Errorf("%s: %w", j.e.Path, err))
		return
	}
	fi := j.fi
	if fi == nil {
		fi, _ = os.Lstat(dst)
	}
	j.tmp, j.fi, j.placed = "", nil, true
	if fi != nil {
		m.record(j.e.Path, fi, j.hex)
	}
	m.dropWritten(j, dst)
	m.saveStateSometimes()
	m.filesDone.Add(1)
	m.progress("fetch", false)
}

// clearForFile removes a directory where a file must go (a file or link is
// replaced by the rename).
func (m *mirrorRun) clearForFile(dst string) error {
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		return os.RemoveAll(dst)
	}
	return nil
}

// makeDirs creates the directories of the index, replacing anything else
// at their paths, so that no file is ever written through a symlink. It
// returns the directories ready for files ("." for Dir).
//
// Before the scan (early), nothing is replaced, since the scan may read
// it: a directory whose path holds something else, and every directory
// under it, is left for the call after the scan and not returned.
func (m *mirrorRun) makeDirs(early bool) (ok map[string]bool, err error) {
	ok = map[string]bool{".": true}
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.Directory {
			continue
		}
		if early && !ok[path.Dir(e.Path)] {
			continue
		}
		p := filepath.Join(m.dir, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err == nil && fi.IsDir() {
			if fi.Mode().Perm()&0o700 != 0o700 {
				// Read-only as published: writable while it is filled.
				if err := os.Chmod(p, fi.Mode().Perm()|0o700); err != nil {
					return nil, fmt.Errorf("mirror: %w", err)
				}
			}
			ok[e.Path] = true
			continue
		}
		if early && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("mirror: %w", err)
			}
		}
		m.touched.Store(true)
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, fmt.Errorf("mirror: %w", err)
		}
		ok[e.Path] = true
		m.sum.Dirs++
	}
	return ok, nil
}

// links creates the symlinks of the index.
func (m *mirrorRun) links() error {
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.Symlink {
			continue
		}
		p := filepath.Join(m.dir, filepath.FromSlash(e.Path))
		if t, err := os.Readlink(p); err == nil && t == e.Target {
			continue
		}
		m.touched.Store(true)
		tmp := filepath.Join(filepath.Dir(p), ".zsyncpipe-link-"+path.Base(e.Path))
		os.Remove(tmp)
		if err := os.Symlink(e.Target, tmp); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		if err := m.clearForFile(p); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		if err := os.Rename(tmp, p); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("mirror: %w", err)
		}
		m.sum.Links++
	}
	return nil
}

// deleteExtra removes what the index does not list, finishParallel
// paths at once (each is its own file, or a directory with all below it).
// The walk does not follow symlinks, so nothing outside Dir is touched.
func (m *mirrorRun) deleteExtra() error {
	var extra []string
	for rel := range m.local {
		if !m.inIndex(rel) {
			extra = append(extra, rel)
		}
	}
	sort.Strings(extra)
	var top []string
	for i, rel := range extra {
		if fi := m.local[rel]; fi.Mode().IsRegular() {
			m.sum.Deleted++
		}
		if i > 0 && strings.HasPrefix(rel, extra[i-1]+"/") {
			extra[i] = extra[i-1] // inside a directory removed already
			continue
		}
		top = append(top, rel)
	}
	if len(top) > 0 {
		m.touched.Store(true)
	}
	p := pool.New().WithErrors().WithMaxGoroutines(finishParallel)
	for _, rel := range top {
		p.Go(func() error {
			if err := os.RemoveAll(filepath.Join(m.dir, filepath.FromSlash(rel))); err != nil {
				return err
			}
			m.mu.Lock()
			delete(m.st.Files, rel)
			m.dirty = true
			m.mu.Unlock()
			return nil
		})
	}
	if err := p.Wait(); err != nil {
		return fmt.Errorf("mirror: delete: %w", err)
	}
	return nil
}

// finishParallel is how many removals, and directories' attributes, the
// end of a run sets at once: system calls that need no order between
// them, on the critical path (nothing else runs then).
const finishParallel = 4

// dirAttrs sets the modes and mtimes of the directories, deepest first
// (a directory the index makes unsearchable must not be so before those
// below it are set), finishParallel at once within a depth (setting a
// directory's attributes changes nothing of its parent's), and drops state
// entries of files no longer there.
func (m *mirrorRun) dirAttrs() error {
	m.removeStale()
	var levels [][]*treeindex.Entry // by depth
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.Directory {
			continue
		}
		// Nothing written and nothing to change: skip the two system calls.
		if fi := m.local[e.Path]; fi != nil && fi.IsDir() && !m.touched.Load() &&
			treeindex.ModeOf(fi.Mode()) == e.Mode && (e.MTime.IsZero() || fi.ModTime().Equal(e.MTime)) {
			continue
		}
		d := strings.Count(e.Path, "/")
		for len(levels) <= d {
			levels = append(levels, nil)
		}
		levels[d] = append(levels[d], e)
	}
	for d := len(levels) - 1; d >= 0; d-- {
		p := pool.New().WithErrors().WithMaxGoroutines(finishParallel)
		for _, e := range levels[d] {
			p.Go(func() error {
				return setAttrs(filepath.Join(m.dir, filepath.FromSlash(e.Path)), e.Mode, e.MTime)
			})
		}
		if err := p.Wait(); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
	}
	for rel := range m.st.Files {
		if !m.inIndex(rel) {
			if _, err := os.Lstat(filepath.Join(m.dir, filepath.FromSlash(rel))); err != nil {
				delete(m.st.Files, rel)
				m.dirty = true
			}
		}
	}
	return nil
}

// flushTree makes what the run changed in Dir durable once every file is
// in place and every removal done: the renames, links, removals and
// directory attributes (the files' data was flushed before their renames).
// One syncfs where there is one, else a flush of each directory of the
// index. Only then does the run end, and only then is it recorded as
// complete (saveDone): a later run that trusts it finds Dir as this one
// left it, even after a crash.
func (m *mirrorRun) flushTree() error {
	if m.opts.NoFsync || !m.touched.Load() {
		return nil
	}
	var err error
	if osfile.HasSyncFS {
		err = osfile.SyncFS(m.dir)
	} else {
		err = osfile.SyncDir(m.dir)
		for i := range m.idx.Entries {
			if e := &m.idx.Entries[i]; e.Type == treeindex.Directory && err == nil {
				err = osfile.SyncDir(filepath.Join(m.dir, filepath.FromSlash(e.Path)))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mirror: flush %s: %w", m.dir, err)
	}
	m.event("final", nil)
	return nil
}

// cleanParts removes what this run and earlier ones left in the parts
// directory.
func (m *mirrorRun) cleanParts() {
	ents, _ := os.ReadDir(m.parts)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(m.parts, e.Name()))
	}
}

// removeStale removes the temporary files a killed run left beside their
// paths that this run did not take or write over (see staleTmps): once
// every file is in place, and before the directories get their mtimes.
func (m *mirrorRun) removeStale() {
	for p := range m.stale {
		if os.Remove(p) == nil {
			m.touched.Store(true)
		}
	}
}

// dryRun reports the plan: every file to write and how, and the bytes to
// download, from a read-only scan of the local files.
func (m *mirrorRun) dryRun(ctx context.Context) error {
	var syncs []*fileJob
	for _, j := range m.jobs {
		if j.how == "sync" {
			syncs = append(syncs, j)
		}
	}
	syncs, err := m.controls(ctx, syncs)
	if err != nil {
		return err
	}
	if err := m.scan(ctx, syncs, false); err != nil {
		return err
	}
	var patches []*fileJob
	for _, j := range m.jobs {
		verb, how := "update", j.how
		if !j.exists {
			verb = "new"
		}
		if packed(j) && m.patchable(j.e) {
			how = "patch"
			patches = append(patches, j)
		}
		m.logf("%s %s (%s)", verb, j.e.Path, how)
	}
	// What patching finds in the old versions is not downloaded.
	saved, local := m.patchDryRun(ctx, patches)
	download := -saved
	for _, j := range m.jobs {
		switch {
		case packed(j):
			download += j.e.Pack.Length
		case j.how == "whole", j.how == "sync", j.how == "inline":
			download += j.e.Size
			if j.how == "whole" {
				m.framesSaved.Add(m.framesSaving(j, []source.Range{{Start: 0, End: j.e.Size}}))
			}
		default:
			local += j.e.Size
		}
	}
	m.sum.Reused, m.sum.Fetched = m.reused.Load()+local, download-m.reused.Load()
	m.sum.FramesSaved = m.framesSaved.Load()
	if m.opts.Delete {
		for rel, fi := range m.local {
			if !m.inIndex(rel) && fi.Mode().IsRegular() {
				m.sum.Deleted++
				m.logf("delete %s", rel)
			}
		}
	}
	return nil
}

// buf returns a buffer of hashBufSize from the run's pool; the caller
// puts it back.
func (m *mirrorRun) buf() *[]byte {
	b, _ := m.bufs.Get().(*[]byte)
	if b == nil {
		b = new([]byte)
		*b = make([]byte, hashBufSize)
	}
	return b
}

// setAttrs sets the mode and mtime of p (not following a symlink at p).
func setAttrs(p string, mode fs.FileMode, mtime time.Time) error {
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			return err
		}
	}
	return nil
}
