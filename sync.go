package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
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
	// the control file came from, or a directory.
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
	// NoFsync skips flushing the result to disk before it is renamed into
	// place. Faster, but a crash right after the rename may leave a
	// damaged file.
	NoFsync bool
	// Fetch tunes the fetch stage (parallel calls, ranges per call).
	Fetch stages.FetchOptions
	// Progress, if set, is called from time to time, from several
	// goroutines.
	Progress func(Progress)
	// Logf, if set, receives warnings and notes (a resume state that does
	// not fit, a control file without a whole-file hash).
	Logf func(format string, args ...any)
}

// Sync rebuilds opts.Output from local data and the missing blocks read from
// the source, verifies it against the control file's whole-file hash, and
// only then renames it into place.
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
	defer j.close()
	if err := j.prepare(); err != nil {
		return nil, err
	}
	if err := j.run(ctx); err != nil {
		return j.sum, err
	}
	if err := j.finish(); err != nil {
		return j.sum, err
	}
	j.sum.Duration = time.Since(start)
	return j.sum, nil
}

// syncJob is the state of one Sync.
type syncJob struct {
	opts      SyncOptions
	f         *control.File
	out, part string
	id        string // controlID of f
	sum       *Summary

	state    *resumeState // from an earlier run, or nil
	setAside string       // an earlier partial result used as a seed
	w        *os.File     // the partial result
	seeds    []stages.Seed
	seedIDs  []seedID
	closers  []io.Closer
	cleanups []func() // release the sources built from URLs
	hasher   *simd.Hasher
	matches  *stages.Matches
	pt       *stages.Patcher
	plan     atomic.Pointer[stages.Plan] // set by the fetch stage, read by the state saver
	verifier *stages.PrefixVerifier
	verified chan error // the verifier's Run result
	src      source.RangeSource
	written  atomic.Bool // every block found in a seed is in the partial result
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
		part: opts.Output + ".part",
		id:   controlID(f),
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
func (j *syncJob) prepare() error {
	paths := append([]string(nil), j.opts.Seeds...)
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(j.out); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("sync: %s exists and is not a regular file: %w", j.out, ErrUsage)
		}
		mode = fi.Mode().Perm()
		paths = append(paths, j.out)
	}
	flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if _, err := os.Stat(j.part); err == nil {
		st, why := loadState(j.part, j.f, j.id)
		if st != nil {
			j.state = st
			flags &^= os.O_TRUNC
		} else {
			if why != "" {
				j.logf("ignoring %s: %s", statePath(j.part), why)
			}
			j.setAside = j.part + ".seed"
			if err := os.Rename(j.part, j.setAside); err != nil {
				return fmt.Errorf("sync: set aside %s: %w", j.part, err)
			}
		}
	} else if _, err := os.Stat(j.part + ".seed"); err == nil {
		j.setAside = j.part + ".seed"
	}
	if j.state == nil {
		os.Remove(statePath(j.part))
	}
	atomicfile.RemoveStale(statePath(j.part)) // left by a sync killed while saving
	if j.setAside != "" {
		paths = append(paths, j.setAside)
	}
	if err := j.openSeeds(paths); err != nil {
		return err
	}
	w, err := os.OpenFile(j.part, flags, mode)
	if err != nil {
		return fmt.Errorf("sync: create %s: %w", j.part, err)
	}
	j.w = w
	if err := w.Truncate(j.f.Length); err != nil {
		return fmt.Errorf("sync: size %s: %w", j.part, err)
	}
	j.hasher, err = simd.NewHasher(j.f.StrongAlgorithm, simd.Options{Fallback: j.opts.NoSIMD})
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	j.pt = stages.NewPatcher(w, &j.f.Header)
	if j.state == nil {
		// A new partial file, truncated to length: it reads as zeros, so
		// blocks of zeros need no writing (they stay holes).
		j.pt.AssumeZeroed()
	}
	j.matches = stages.NewMatches(j.f.Blocks())
	if j.state != nil {
		// Verified blocks of the earlier run are in place: the partial
		// result is their seed, at their own offsets.
		bs := int64(j.f.Blocksize)
		resumed := 0
		for i := int64(0); i < j.f.Blocks(); i++ {
			if j.state.done(i) {
				j.matches.Set(i, len(j.seeds), i*bs)
				j.pt.MarkDone(i)
				resumed++
			}
		}
		j.logf("resuming %s: %d of %d blocks already verified", j.part, resumed, j.f.Blocks())
	}
	return nil
}

// openSeeds opens the seed files, skipping repeats of the same file and
// seeds the earlier run scanned completely. Files named in SyncOptions.Seeds
// must exist; the others are skipped when they do not.
func (j *syncJob) openSeeds(paths []string) error {
	var infos []os.FileInfo
	for i, path := range paths {
		fh, err := os.Open(path)
		if err != nil {
			if i >= len(j.opts.Seeds) && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("sync: open seed: %w", err)
		}
		fi, err := fh.Stat()
		if err != nil {
			fh.Close()
			return fmt.Errorf("sync: seed %s: %w", path, err)
		}
		if !fi.Mode().IsRegular() {
			fh.Close()
			return fmt.Errorf("sync: seed %s is not a regular file: %w", path, ErrUsage)
		}
		dup := false
		for _, o := range infos {
			dup = dup || os.SameFile(o, fi)
		}
		if dup || j.state != nil && j.state.scanned(path, fi) {
			fh.Close()
			continue
		}
		infos = append(infos, fi)
		j.closers = append(j.closers, fh)
		j.seeds = append(j.seeds, stages.Seed{Name: path, R: fh, Size: fi.Size()})
		j.seedIDs = append(j.seedIDs, identify(path, fi))
		j.sum.Seeds = append(j.sum.Seeds, path)
	}
	return nil
}

// run scans the seeds and fetches what they lack, writing both into the
// partial result as it goes:
//
//	delta (writes what it finds) ─▶ fetch (what is missing) ─▶ patch
func (j *syncJob) run(ctx context.Context) error {
	f := j.f
	var seedBytes int64
	for _, s := range j.seeds {
		seedBytes += s.Size
	}
	var scannedBytes, fetched atomic.Int64
	progress := func(phase string, done, total int64) {
		if j.opts.Progress != nil {
			j.opts.Progress(Progress{Phase: phase, Done: done, Total: total})
		}
	}
	p := pipeline.New(pipeline.Config{Workers: j.opts.Workers})
	// The scan writes what it finds straight into the partial result (no
	// copy, no hand-off): positioned writes from each scanning worker.
	scanned := stages.DeltaStage(p, f, j.seeds, stages.DeltaOptions{
		Workers:  j.opts.Workers,
		Hasher:   j.hasher,
		Matches:  j.matches,
		OnBlocks: j.pt.WriteBlock,
		Progress: func(n int64) { progress("scan", scannedBytes.Add(n), seedBytes) },
	})
	fo := j.opts.Fetch
	fo.Hasher = j.hasher
	fo.Progress = func(n int64) { progress("fetch", fetched.Add(n), j.plan.Load().MissingBytes) }
	fetchedBlocks := stages.FetchStage(p, f, scanned, j.source, fo, func(plan *stages.Plan) { j.plan.Store(plan) })
	stages.PatchStage(p, fetchedBlocks, j.pt)

	// Hash the output's prefix as it grows, beside everything else.
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	j.verifier = stages.NewPrefixVerifier(j.w, &f.Header, j.pt)
	j.verified = make(chan error, 1)
	go func() { j.verified <- j.verifier.Run(vctx) }()

	// Save the resume state now and then, so that even a killed sync
	// leaves its verified blocks usable.
	stop := make(chan struct{})
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				j.saveState()
			}
		}
	}()
	runStart := time.Now()
	runErr := p.Run(ctx)
	close(stop)
	<-saved

	j.sum.Stages = p.Stats()
	if plan := j.plan.Load(); plan != nil {
		j.sum.Reused = plan.Reused
	}
	j.sum.Fetched = fetched.Load()
	if st, ok := j.src.(source.StatsReporter); ok {
		s := st.TransferStats()
		j.sum.Requests, j.sum.Ranges, j.sum.Overhead = s.Requests, s.Ranges, s.Overhead
	}
	for _, c := range j.cleanups {
		c()
	}
	j.cleanups = nil
	if runErr != nil {
		vcancel()
		<-j.verified
		j.keepProgress()
		return fmt.Errorf("sync %s: %w", j.out, runErr)
	}
	if err := j.pt.Finish(); err != nil {
		vcancel()
		<-j.verified
		return fmt.Errorf("sync %s: %w", j.out, err)
	}
	if j.opts.Progress != nil {
		j.opts.Progress(Progress{Phase: "verify", Done: j.verifier.Hashed(), Total: f.Length})
	}
	err := <-j.verified
	busy, waiting := j.verifier.Times()
	j.sum.Stages = append(j.sum.Stages, pipeline.StageStats{
		Name: "verify", Workers: 1, Bytes: j.verifier.Hashed(),
		Busy: busy, WaitIn: waiting, Wall: time.Since(runStart),
	})
	if err != nil {
		return fmt.Errorf("sync %s: %w", j.out, err)
	}
	return nil
}

// source returns the RangeSource for the missing blocks.
func (j *syncJob) source() (source.RangeSource, error) {
	if j.opts.Source != nil {
		j.src = j.opts.Source
		return j.src, nil
	}
	s, err := j.urlSource()
	if err != nil {
		return nil, err
	}
	j.src = s
	return s, nil
}

// seedsWritten reports whether every block found in a seed is in the
// partial result.
func (j *syncJob) seedsWritten() bool {
	if j.written.Load() {
		return true
	}
	plan := j.plan.Load()
	if plan == nil {
		return false
	}
	for _, c := range plan.Copies {
		for i := c.Index; i < c.Index+c.Count; i++ {
			if !j.pt.Done(i) {
				return false
			}
		}
	}
	j.written.Store(true)
	return true
}

// saveState records the verified blocks of the partial result.
func (j *syncJob) saveState() {
	var scanned []seedID
	if j.state != nil {
		scanned = j.state.Scanned
	}
	if j.seedsWritten() {
		scanned = append(scanned[:len(scanned):len(scanned)], j.seedIDs...)
	}
	if err := saveState(j.part, j.id, j.pt, j.f.Blocks(), scanned); err != nil {
		j.logf("%v", err)
	}
}

// keepProgress decides, after a failed run, which partial result to keep
// for the next run: the new one, with its state, when it holds every block
// found locally (the set-aside seed is then no longer needed); otherwise
// the earlier one.
func (j *syncJob) keepProgress() {
	if j.setAside == "" || j.seedsWritten() {
		if j.setAside != "" {
			os.Remove(j.setAside)
		}
		j.saveState()
		return
	}
	j.w.Close()
	j.w = nil
	os.Remove(j.part)
	os.Remove(statePath(j.part))
	os.Rename(j.setAside, j.part)
}

// finish checks the whole-file hash of the partial result and renames it
// into place.
func (j *syncJob) finish() error {
	f, w := j.f, j.w
	// Every block is in the new partial result: the old one has served.
	if j.setAside != "" {
		os.Remove(j.setAside)
	}
	if err := j.verifier.Verify(); errors.Is(err, stages.ErrNoFileHash) {
		j.logf("warning: %v; only the block checksums vouch for %s", err, j.out)
	} else if errors.Is(err, stages.ErrMismatch) {
		// Every block passed its own check, yet the whole does not match:
		// start afresh next time, using this result only as a seed.
		os.Remove(statePath(j.part))
		return fmt.Errorf("sync %s: %w: %w", j.out, ErrVerify, err)
	} else if err != nil {
		j.saveState()
		return fmt.Errorf("sync %s: %w", j.out, err)
	}
	if !j.opts.NoFsync {
		if err := w.Sync(); err != nil {
			return fmt.Errorf("sync: flush %s: %w", j.part, err)
		}
	}
	j.w = nil
	if err := w.Close(); err != nil {
		return fmt.Errorf("sync: close %s: %w", j.part, err)
	}
	if !f.MTime.IsZero() {
		if err := os.Chtimes(j.part, f.MTime, f.MTime); err != nil {
			return fmt.Errorf("sync: set mtime of %s: %w", j.part, err)
		}
	}
	if err := os.Rename(j.part, j.out); err != nil {
		return fmt.Errorf("sync: rename %s to %s: %w", j.part, j.out, err)
	}
	os.Remove(statePath(j.part))
	return nil
}

// close releases what the job holds.
func (j *syncJob) close() {
	if j.w != nil {
		j.w.Close()
	}
	for _, c := range j.closers {
		c.Close()
	}
	if j.hasher != nil {
		j.hasher.Close()
	}
}

// urlSource resolves the control file's URLs and the mirrors against the
// base and returns a source reading from all of them that can be used.
func (j *syncJob) urlSource() (source.RangeSource, error) {
	urls := append(append([]string(nil), j.f.URLs...), j.opts.MirrorURLs...)
	if len(urls) == 0 {
		return nil, errors.New("control file lists no URL for the missing blocks")
	}
	var srcs []source.RangeSource
	var errs []error
	for _, raw := range urls {
		s, err := j.openURL(raw)
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

// openURL turns one URL of the control file into a source.
func (j *syncJob) openURL(raw string) (source.RangeSource, error) {
	u, err := resolveURL(raw, j.opts.BaseURL)
	if err != nil {
		return nil, err
	}
	t := transport(j.opts.Transports, j.opts.HTTP, u.Scheme)
	if t == nil {
		return nil, fmt.Errorf("URL %q: scheme %q is not supported", raw, u.Scheme)
	}
	s, err := t.OpenRanges(context.Background(), u, j.f.Length)
	if err != nil {
		return nil, err
	}
	if c, ok := s.(io.Closer); ok {
		j.cleanups = append(j.cleanups, func() { c.Close() })
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
