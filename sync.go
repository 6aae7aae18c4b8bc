package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/internal/writeback"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/seedscan"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// SyncOptions configures Sync.
type SyncOptions struct {
	// Control is the control file of the target; required.
	Control *control.File
	// Output is the path of the file to rebuild; required. An existing
	// file there and Output+".part" are used as seeds, and the existing
	// file is replaced only by a fully verified result.
	Output string
	// Seeds are further local files that may hold parts of the target.
	Seeds []string
	// Source serves the target's missing ranges. When nil, the control
	// file's URLs and MirrorURLs are resolved against BaseURL and used
	// together: http(s) URLs through package httpsource, local paths and
	// file:// URLs directly.
	Source source.RangeSource
	// BaseURL resolves relative URLs of the control file: the URL or path
	// the control file came from, or a directory. When it is a remote URL
	// (http, https, sftp…) the control file's own URLs never lead to local
	// files: an absolute path ("/pub/f") is a path on that host, as a
	// browser resolves it, and file: URLs are refused.
	BaseURL string
	// MirrorURLs are further places that serve the target, used beside
	// the control file's URLs.
	MirrorURLs []string
	// HTTP configures the HTTP sources built from the URLs.
	HTTP httpsource.Options
	// Transports opens URLs of further schemes (sftp://, for instance)
	// and may replace the built-in http, https and file transports.
	Transports Transports
	// Workers bounds scanning and hashing goroutines; 0 means one per
	// physical core.
	Workers int
	// NoSIMD forces the portable MD5 path.
	NoSIMD bool
	// Hasher, if set, computes the strong checksums; it must be for the
	// control file's algorithm. The caller owns it (Sync does not close
	// it): one Hasher shared by many Syncs saves starting md5-simd
	// servers for each. nil creates one for the call.
	Hasher *simd.Hasher
	// NoFsync skips flushing the result to disk before it is renamed into
	// place. Faster, but a crash right after the rename may leave a
	// damaged file.
	NoFsync bool
	// Fetch bounds the calls to the source (parallel calls, ranges and
	// bytes per call).
	Fetch stages.FetchLimits
	// Progress, if set, is called from time to time with the bytes done so
	// far of the current phase, from one goroutine at a time.
	Progress func(Progress)
	// Logf, if set, receives warnings and notes (a resume state that does
	// not fit, a control file without a whole-file hash).
	Logf func(format string, args ...any)

	// part, set by Mirror, is Output+".part" as its scan left it: open,
	// locked and holding the blocks the scan found. Sync goes on from it
	// instead of opening the file again, and writes no first state for it
	// (see syncJob.prepare); the caller closes it after Sync returns.
	// Output is then not looked at before the result replaces it: the
	// caller's scan used every local copy of the target as a seed
	// already, and makes Output nowhere else (two lookups of a path that
	// is not there, per rebuilt file of a mirror).
	part *partFile
	// flushLater, set by Mirror, leaves the flush of the verified result
	// to the caller: its writeback is started as it is written (hints),
	// nothing waits for the disk at the end (no journal commit, no device
	// flush, no wait for its data), and it is renamed to Output
	// unflushed. The caller flushes it, with many others at once (one
	// syncfs), before it renames it anywhere else. On a journaled file system each
	// file's own flush forces a journal commit (see
	// docs/trees-measurements.md, "Durability, measured").
	flushLater bool
	// written, set by Mirror, is called once every block of the result
	// is written, before the final hash and flush are waited for: the
	// rebuild starts its next file then (see mirrorRun.rebuild).
	written func()
	// attrs, set by Mirror, gives the result its mode and mtime (see
	// resultAttrs).
	attrs *resultAttrs
}

// resultAttrs are the mode and mtime a result of Sync gets instead of
// those Sync chooses, through its descriptor before it is renamed into
// place (no lookup of its path, no second stat after); info is then set
// to what the result's descriptor says of it.
type resultAttrs struct {
	mode  os.FileMode
	mtime time.Time // zero: the control file's
	info  os.FileInfo
}

// flushes reports whether Sync flushes the result itself before renaming
// it.
func (o *SyncOptions) flushes() bool { return !o.NoFsync && !o.flushLater }

// Sync rebuilds opts.Output from local data and the missing blocks read from
// the source, verifies it against the control file's whole-file hash, and
// only then renames it into place.
//
// When the output already has the target's length and whole-file hash,
// Sync writes nothing and reports Summary.UpToDate: the length is checked
// first, then the hash, which costs one read of the file.
//
// On failure the existing output is left as it was. The partial result
// stays in Output+".part" with a small state file, Output+".part.state",
// listing its verified blocks and the seeds already scanned: the next Sync
// of the same control file goes on from there.
func Sync(ctx context.Context, opts SyncOptions) (*Summary, error) {
	start := time.Now()
	j, err := newSyncJob(opts)
	if err != nil {
		return nil, err
	}
	if opts.part == nil && upToDate(ctx, j.out, j.f) {
		return upToDateSummary(j.out, j.f, start), nil
	}
	defer j.close()
	j.start = start
	if err := j.prepare(ctx); err != nil {
		return nil, err
	}
	j.sum.Timeline.Prepared = time.Since(start)
	verified := j.run(ctx)
	// Let go of the seeds (the output is one) and the sources before the
	// output is replaced: Windows cannot replace an open file.
	j.closeInputs()
	if verified == nil || errors.Is(verified, ErrVerify) || errors.Is(verified, stages.ErrNoFileHash) {
		if err := j.part.commit(verified, !opts.flushes()); err != nil {
			return j.sum, err
		}
	} else {
		if err := j.part.keep(); err != nil {
			j.logf("%v", err)
		} else if ctx.Err() == nil {
			verified = fmt.Errorf("%w; what was done stays in %s, and the same sync run again goes on from there", verified, j.part.path)
		}
		return j.sum, j.failed(ctx, fmt.Errorf("sync %s: %w", j.out, verified))
	}
	j.sum.Duration = time.Since(start)
	j.sum.Timeline.Done = j.sum.Duration
	return j.sum, nil
}

// writebackEvery is how many bytes written to the partial result start
// its writeback to disk and a background flush (when the result is
// flushed at the end; see package internal/writeback).
const writebackEvery = 8 << 20

// syncJob is the state of one Sync: what its stages share. Everything that
// moves between them flows through the pipeline as updates (see run).
type syncJob struct {
	opts    SyncOptions
	f       *control.File
	out     string
	sum     *Summary
	part    *partFile
	seeds   []stages.Seed
	closers []func()
	hasher  *simd.Hasher
	matches *stages.Matches
	src     source.RangeSource // opened by the fetch stage, when needed
	start   time.Time          // of the Sync, for Summary.Timeline

	// Owned by the record stage.
	scanned, fetched, seedBytes, missing int64
	lastSave                             time.Time
}

func newSyncJob(opts SyncOptions) (*syncJob, error) {
	if opts.Control == nil {
		return nil, fmt.Errorf("sync: no control file: %w", ErrUsage)
	}
	if opts.Output == "" {
		return nil, fmt.Errorf("sync: no output path: %w", ErrUsage)
	}
	f := opts.Control
	return &syncJob{
		opts: opts,
		f:    f,
		out:  opts.Output,
		sum:  &Summary{Output: opts.Output, Length: f.Length},
	}, nil
}

func (j *syncJob) logf(format string, args ...any) {
	if j.opts.Logf != nil {
		j.opts.Logf(format, args...)
	}
}

// prepare opens the partial result — resuming an earlier one when its state
// matches — and the seeds: those asked for, the existing output, and an
// earlier partial result without state, set aside so that the new one can
// be written.
func (j *syncJob) prepare(ctx context.Context) error {
	paths := append([]string(nil), j.opts.Seeds...)
	mode := os.FileMode(0o644)
	if j.opts.part != nil {
		// Handed over by Mirror: see SyncOptions.part.
	} else if fi, err := os.Stat(j.out); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("sync: output %s exists and is %w", j.out, ErrNotRegular)
		}
		mode = fi.Mode().Perm()
		paths = append(paths, j.out)
	}
	part := j.opts.part
	if part != nil {
		part.noDirSync = true
	} else {
		var err error
		if part, err = openPart(j.out, j.f, mode, j.logf); err != nil {
			return err
		}
	}
	j.part = part
	part.attrs = j.opts.attrs
	if !j.opts.NoFsync {
		// Get the result onto the disk while it is built (writeback
		// started early, background flushes), so that the flush before
		// the rename has little left to wait for.
		if j.opts.flushLater {
			part.wb = writeback.NewHints(part.f, writebackEvery)
		} else {
			part.wb = writeback.NewEvery(part.f, writebackEvery)
		}
		part.pt.OnWrite(part.wb.Wrote)
	}
	if part.setAside != "" {
		paths = append(paths, part.setAside)
	}
	if err := j.openSeeds(ctx, paths); err != nil {
		return err
	}
	var err error
	if h := j.opts.Hasher; h != nil {
		if h.Algorithm() != j.f.StrongAlgorithm {
			return fmt.Errorf("sync: SyncOptions.Hasher computes %v, the control file uses %v: %w", h.Algorithm(), j.f.StrongAlgorithm, ErrUsage)
		}
		j.hasher = h
	} else if j.hasher, err = simd.NewHasher(j.f.StrongAlgorithm, simd.Options{Fallback: j.opts.NoSIMD}); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	j.matches = stages.NewMatches(j.f.Blocks())
	if n := part.resume(j.matches, len(j.seeds)); part.earlier != nil {
		j.logf("resuming %s: %d of %d blocks already verified", part.path, n, j.f.Blocks())
	}
	// A first state now, while there is room: if the disk fills up, the
	// later ones are written over it in place. Not for a partial result
	// handed over by Mirror: most of its rebuilds take less than the
	// second after which the first save comes, and a state file would be
	// one more inode per file (see docs/trees.md); a run killed before
	// that save leaves the partial result, which the next run uses as a
	// seed.
	if j.opts.part == nil {
		if err := j.part.reserve(); err != nil {
			j.logf("%v", err)
		}
	}
	// The first save comes a second from now: until then the state on
	// disk (reserved now, or the earlier run's) says as much as a save
	// would.
	j.lastSave = time.Now()
	return nil
}

// openSeeds opens the seed files, skipping repeats of the same file and
// seeds the earlier run scanned completely. Files named in SyncOptions.Seeds
// must exist; the others are skipped when they do not.
func (j *syncJob) openSeeds(ctx context.Context, paths []string) error {
	var infos []os.FileInfo
	for i, path := range paths {
		// Never open(2) a FIFO or a device: it may block for ever.
		fh, fi, err := osfile.OpenRegular(ctx, path)
		if err != nil {
			if i >= len(j.opts.Seeds) && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("sync: seed: %w", err)
		}
		dup := false
		for _, o := range infos {
			dup = dup || os.SameFile(o, fi)
		}
		if dup || j.part.skipSeed(path, fi) {
			fh.Close()
			continue
		}
		infos = append(infos, fi)
		j.closers = append(j.closers, func() { fh.Close() })
		j.seeds = append(j.seeds, stages.Seed{Name: path, R: fh, Size: fi.Size()})
		j.part.seeds = append(j.part.seeds, identify(path, fi))
		j.seedBytes += fi.Size()
		j.sum.Seeds = append(j.sum.Seeds, path)
	}
	return nil
}

// update is what flows through the sync pipeline after the scan. Each
// stage acts on the kind of update it is for and passes every update on,
// so that the stages at the end see all that happened before them, in
// order: verify hashes what the stages before it have written, record
// reports progress and saves the resume state.
type update struct {
	scanned  int64        // a segment of a seed, this many bytes, is scanned (and its finds written)
	plan     *stages.Plan // every seed is scanned: what they hold and what is missing
	fetched  int64        // a batch of this many target bytes is fetched, checked and written
	verified int64        // the whole-file hash covers this many leading bytes
}

// Size returns the fetched bytes the update stands for (pipeline.Sizer).
func (u update) Size() int64 { return u.fetched }

// run scans the seeds and fetches what they lack, writing both into the
// partial result as it goes, and hashes the result as it grows. Its result
// is the whole-file verification's: nil, or an error wrapping ErrVerify or
// stages.ErrNoFileHash; any other error means the run did not finish.
//
//	segments ─▶ scan ─▶ delta ─▶ fetch ─▶ verify ─▶ record
//
// The scan writes what it finds straight into the partial result (no copy,
// no hand-off: positioned writes from each scanning worker) and reports
// each segment; delta passes those reports on and, once every segment is
// scanned, the plan; fetch reads the plan's missing ranges from the
// source and writes them likewise, from the buffer they were checked in;
// verify hashes the written prefix of the file after each update; record
// reports progress and saves the resume state. Run owns every goroutine.
func (j *syncJob) run(ctx context.Context) error {
	f := j.f
	p := pipeline.New(pipeline.Config{Workers: j.opts.Workers})
	var scanned *pipeline.Stream[int64]
	if len(j.seeds) == 0 {
		// Nothing to scan (a first download, or a partial result that
		// Mirror's scan filled): no index of the blocks either, only
		// the check the index makes of the records.
		if c := &f.Checksums; int64(c.Len()) != f.Blocks() || c.StrongBytes <= 0 || len(c.Strong) != c.Len()*c.StrongBytes {
			return fmt.Errorf("sync: control file has %d block records (%d strong hash bytes) for %d blocks", c.Len(), len(c.Strong), f.Blocks())
		}
		scanned = pipeline.Source(p, "scan", func(context.Context, func(int64) error) error { return nil })
	} else {
		var err error
		scanned, err = stages.ScanStage(p, f, j.seeds, stages.DeltaOptions{
			Workers:  j.opts.Workers,
			Hasher:   j.hasher,
			Matches:  j.matches,
			OnBlocks: j.part.pt.WriteBlock,
		})
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	updates := pipeline.Fold(p, "delta", scanned,
		func(ctx context.Context, n int64, emit func(update) error) error { return emit(update{scanned: n}) },
		func(ctx context.Context, emit func(update) error) error {
			j.sum.Timeline.Scanned = time.Since(j.start)
			// Between Scanned and FetchStart: Extend (and opening the
			// source).
			if err := j.extend(ctx); err != nil {
				return err
			}
			return emit(update{plan: stages.Blueprint(&f.Header, j.matches)})
		})
	updates = pipeline.Transform(p, "fetch", updates, j.fetch)
	// The whole-file hash runs beside the pipeline, on goroutines of its
	// own, following what the scan and the fetch write (Patcher.Changed):
	// it hashes whatever is written as soon as it is, on every core the
	// hash chain lets it use, and holds up no stage. (Run as a stage, with
	// a slice of hashing per update, it kept the fetch waiting and hashed
	// on one core only while the fetch ran.)
	verifier := stages.NewPrefixVerifier(j.part.f, &f.Header, j.part.pt)
	vctx, stopVerify := context.WithCancel(ctx)
	defer stopVerify()
	var hashErr error
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		if hashErr = verifier.Run(vctx); hashErr == nil {
			j.sum.Timeline.Hashed = time.Since(j.start)
		}
	}()
	updates = pipeline.Fold(p, "verify", updates,
		func(ctx context.Context, u update, emit func(update) error) error {
			u.verified = verifier.Hashed()
			return emit(u)
		},
		func(ctx context.Context, emit func(update) error) error {
			// Every stage before this one is done: every block is written.
			if err := j.part.pt.Finish(); err != nil {
				return err
			}
			if j.opts.written != nil {
				j.opts.written()
			}
			wait := func() error {
				pipeline.Wait(ctx, func() {
					select {
					case <-hashed:
					case <-ctx.Done():
					}
				})
				if err := ctx.Err(); err != nil {
					return err
				}
				return hashErr
			}
			if j.opts.NoFsync {
				if err := wait(); err != nil {
					return err
				}
				return emit(update{verified: verifier.Hashed()})
			}
			if j.opts.flushLater {
				// The caller's syncfs writes and flushes it, with
				// many other files: nothing here waits for the disk.
				// (Writing its data and waiting for it here held a
				// rebuild's slot for as long as the syncfs under way
				// took: 0.12-0.16 s for a small file at the end of a
				// mirror, every slot waiting at once.) The early
				// writeback only gives hints: no error to collect.
				err := j.part.stopWriteback()
				if werr := wait(); err == nil {
					err = werr
				}
				if err != nil {
					return err
				}
				return emit(update{verified: verifier.Hashed()})
			}
			// Flush the file while the rest of it is hashed: the flush
			// waits on the disk, the hash on the cores. A result that
			// fails verification is not renamed into place, flushed or
			// not.
			flushed := make(chan error, 1)
			go func() {
				err := j.part.flush()
				j.sum.Timeline.Flushed = time.Since(j.start)
				flushed <- err
			}()
			err := wait()
			if ferr := <-flushed; ferr != nil && err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			j.part.flushed = j.opts.flushes()
			return emit(update{verified: verifier.Hashed()})
		})
	pipeline.Sink(p, "record", updates, j.record)

	runErr := p.Run(ctx)
	stopVerify()
	<-hashed // no goroutine outlives run
	j.sum.Stages = append(p.Stats(), pipeline.StageStats{
		Name: "hash", Workers: verifier.Workers(), Bytes: verifier.Hashed(),
		Busy: verifier.Busy(), WaitIn: verifier.Waited(), Wall: max(0, j.sum.Timeline.Hashed-j.sum.Timeline.Prepared),
	})
	var verified error
	if runErr == nil {
		if verified = verifier.Verify(); errors.Is(verified, stages.ErrMismatch) {
			verified = j.repair(ctx, verified)
		}
	}
	// A block received twice (a retry, another mirror) is fetched once;
	// the second copy counts as downloaded only.
	j.sum.Fetched = min(j.fetched, j.missing)
	if st, ok := j.src.(source.StatsReporter); ok {
		s := st.TransferStats()
		j.sum.Requests, j.sum.Ranges, j.sum.Overhead, j.sum.Downloaded = s.Requests, s.Ranges, s.Overhead, s.Downloaded
	}
	if runErr != nil {
		// People need the failure, not the name of the stage it hit.
		var se *pipeline.StageError
		if errors.As(runErr, &se) {
			return se.Err
		}
		return runErr
	}
	return verified
}

// repair is called when the whole-file hash of the result fails: the
// blocks fetched unchecked (stages.FetchOptions.Unchecked), and those an
// earlier run left, were never checked one by one. Every block is checked
// now; those failing their check are fetched again, checked on arrival
// this time (a source of several mirrors drops the one that lies), and
// the whole file is hashed again. It returns the new verification's
// result, or verified, the first one's, when every block passes its check
// yet the whole does not match.
func (j *syncJob) repair(ctx context.Context, verified error) error {
	bad, err := stages.CheckBlocks(ctx, j.f, j.part.f, j.hasher)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if len(bad) == 0 {
		return verified
	}
	var n int64
	for _, r := range bad {
		n += r.Len()
	}
	j.logf("%s: %v; %d bytes (%d ranges) failed their block checksums and are fetched again", j.out, verified, n, len(bad))
	j.part.pt.Forget(bad)
	src := j.src
	if src == nil {
		if src, err = j.source(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrFetch, err)
		}
	}
	bs := int64(j.f.Blocksize)
	err = stages.Fetch(ctx, j.f, src, bad, stages.FetchOptions{FetchLimits: j.opts.Fetch, Hasher: j.hasher}, func(b stages.Batch) error {
		if err := j.part.pt.Write(b); err != nil {
			return err
		}
		for _, blk := range b {
			j.fetched += min(int64(len(blk.Data)), j.f.Length-blk.Index*bs)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := j.part.pt.Finish(); err != nil {
		return err
	}
	// Written after the flush of the pipeline: commit flushes again.
	j.part.flushed = false
	return stages.Verify(ctx, io.NewSectionReader(j.part.f, 0, j.f.Length), &j.f.Header)
}

// extend looks, once the scan is done, for missing blocks next to found
// ones at the offsets those imply (seedscan.Extend), and writes them into
// the partial result. The scan takes a block only with the block after it
// (seq_matches 2) or following a run, and its parallel tiles choose other
// alignments than zsync's serial scan where data repeats; on go1.26.7 ->
// go1.26.8 it left 10 blocks that zsync finds, and Extend finds 57 more
// in 10 ms, 0.2 MB less to download (docs/performance.md, "Bytes on the
// reference pair").
func (j *syncJob) extend(ctx context.Context) error {
	if len(j.seeds) == 0 {
		return nil
	}
	t := seedscan.Target{Control: j.f, Matches: j.matches, Write: j.part.pt.WriteBlock}
	if _, err := seedscan.Extend(ctx, []seedscan.Target{t}, []*stages.Matches{j.matches}, j.seeds, seedscan.Options{Workers: j.opts.Workers}); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// fetch passes every update on and, for the plan, fetches the missing
// ranges from the source and writes the checked blocks into the partial
// result, emitting the count of bytes of each batch. The blocks are written
// where they were checked, in the buffer of their call: handing them on to
// another stage would mean a copy of every fetched byte.
func (j *syncJob) fetch(ctx context.Context, u update, emit func(update) error) error {
	if err := emit(u); err != nil || u.plan == nil || len(u.plan.Missing) == 0 {
		return err
	}
	j.sum.Timeline.FetchStart = time.Since(j.start)
	defer func() { j.sum.Timeline.Fetched = time.Since(j.start) }()
	src, err := j.source(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFetch, err)
	}
	// The fetched blocks are not checked one by one on arrival when the
	// whole-file SHA-256 is checked before the result is used (repair
	// finds the bad ones when it fails), unless the source chooses among
	// mirrors: the checks on arrival let it drop a lying one at its first
	// bad block.
	_, mirrors := src.(*httpsource.Mirrors)
	opts := stages.FetchOptions{FetchLimits: j.opts.Fetch, Hasher: j.hasher, Unchecked: j.f.SHA256 != nil && !mirrors}
	bs := int64(j.f.Blocksize)
	return stages.Fetch(ctx, j.f, src, u.plan.Missing, opts, func(b stages.Batch) error {
		if err := j.part.pt.Write(b); err != nil {
			return err
		}
		var n int64
		for _, blk := range b {
			n += min(int64(len(blk.Data)), j.f.Length-blk.Index*bs)
		}
		return emit(update{fetched: n})
	})
}

// record is the last stage: it reports progress (cumulative per phase),
// keeps the plan's figures for the summary, and saves the resume state at
// most once a second, so that even a killed sync leaves its verified blocks
// usable.
func (j *syncJob) record(ctx context.Context, u update) error {
	progress := func(phase string, done, total int64) {
		if j.opts.Progress != nil {
			j.opts.Progress(Progress{Phase: phase, Done: done, Total: total})
		}
	}
	switch {
	case u.scanned > 0:
		j.scanned += u.scanned
		progress("scan", j.scanned, j.seedBytes)
	case u.plan != nil:
		// The scan wrote every block it found before it reported the plan.
		j.part.scanned = true
		j.sum.Reused = u.plan.Reused
		j.missing = u.plan.MissingBytes
	case u.fetched > 0:
		j.fetched += u.fetched
		progress("fetch", j.fetched, j.missing)
	}
	if u.verified > 0 {
		progress("verify", u.verified, j.f.Length)
	}
	if time.Since(j.lastSave) >= time.Second {
		j.lastSave = time.Now()
		if err := j.part.save(); err != nil {
			j.logf("%v", err)
		}
	}
	return nil
}

// source returns the RangeSource for the missing blocks.
func (j *syncJob) source(ctx context.Context) (source.RangeSource, error) {
	if j.opts.Source != nil {
		j.src = j.opts.Source
		return j.src, nil
	}
	s, err := j.urlSource(ctx)
	if err != nil {
		return nil, err
	}
	j.src = s
	return s, nil
}

// closeInputs closes the seeds and the sources.
func (j *syncJob) closeInputs() {
	for _, c := range j.closers {
		c()
	}
	j.closers = nil
}

// close releases what the job holds.
func (j *syncJob) close() {
	if j.part != nil {
		j.part.close()
	}
	j.closeInputs()
	if j.hasher != nil && j.opts.Hasher == nil {
		j.hasher.Close()
	}
}

// urlSource resolves the control file's URLs and the mirrors against the
// base and returns a source reading from all of them that can be used.
func (j *syncJob) urlSource(ctx context.Context) (source.RangeSource, error) {
	urls := append(append([]string(nil), j.f.URLs...), j.opts.MirrorURLs...)
	if len(urls) == 0 {
		return nil, errors.New("control file lists no URL for the missing blocks")
	}
	var srcs []source.RangeSource
	var errs []error
	for i, raw := range urls {
		// The control file's own URLs may not lead a remote control
		// file to local files; the caller's mirrors may.
		s, err := j.openURL(ctx, raw, i < len(j.f.URLs) && isRemoteBase(j.opts.BaseURL))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		srcs = append(srcs, s)
	}
	switch len(srcs) {
	case 0:
		return nil, fmt.Errorf("no usable source for the missing blocks: %w", errors.Join(errs...))
	case 1:
		return srcs[0], nil
	}
	return httpsource.NewMirrors(srcs...), nil
}

// openURL turns one URL of the control file into a source. With remoteOnly,
// only local paths and file: URLs are refused.
func (j *syncJob) openURL(ctx context.Context, raw string, remoteOnly bool) (source.RangeSource, error) {
	u, err := resolveURL(raw, j.opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if remoteOnly && (u.Scheme == "file" || u.Scheme == "") {
		return nil, fmt.Errorf("URL %q: a control file from %s may not point at local files", raw, j.opts.BaseURL)
	}
	t := transport(j.opts.Transports, j.opts.HTTP, u.Scheme)
	if t == nil {
		return nil, fmt.Errorf("URL %q: scheme %q is not supported", raw, u.Scheme)
	}
	s, err := t.OpenRanges(ctx, u, j.f.Length)
	if err != nil {
		return nil, err
	}
	if c, ok := s.(io.Closer); ok {
		j.closers = append(j.closers, func() { c.Close() })
	}
	return s, nil
}

// resolveURL resolves a URL of the control file against the base: the URL
// or local path the control file came from, or a directory. Local paths
// come back as file URLs.
func resolveURL(raw, base string) (*url.URL, error) {
	ref, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", raw, err)
	}
	if ref.IsAbs() {
		return ref, nil
	}
	if isRemoteBase(base) {
		// As a browser would: "/abs/path" is a path on the same host.
		b, _ := url.Parse(base)
		return b.ResolveReference(ref), nil
	}
	if filepath.IsAbs(raw) {
		return &url.URL{Scheme: "file", Path: raw}, nil
	}
	if b, err := url.Parse(base); err == nil && len(b.Scheme) > 1 { // not a drive letter
		return b.ResolveReference(ref), nil
	}
	// A local base: the control file's path, or a directory.
	dir := base
	if fi, err := os.Stat(base); base != "" && (err != nil || !fi.IsDir()) {
		dir = filepath.Dir(base)
	}
	p, err := filepath.Abs(filepath.Join(dir, filepath.FromSlash(ref.Path)))
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", raw, err)
	}
	return &url.URL{Scheme: "file", Path: p}, nil
}

// isRemoteBase reports whether base, where a control file came from, is
// the URL of a remote scheme (http, https, sftp…): not a local path, not a
// file: URL.
func isRemoteBase(base string) bool {
	b, err := url.Parse(base)
	return err == nil && len(b.Scheme) > 1 && b.Scheme != "file" && b.Host != ""
}
