package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/simd"
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
	// file's URLs are resolved against BaseURL; only local paths and
	// file:// URLs are supported that way.
	Source stages.RangeSource
	// BaseURL resolves relative URLs of the control file: a directory
	// path, or a file:// URL.
	BaseURL string
	// Workers bounds scanning and hashing goroutines; 0 means one per
	// physical core.
	Workers int
	// NoSIMD forces the portable MD5 path.
	NoSIMD bool
	// NoFsync skips flushing the result to disk before it is renamed into
	// place. Faster, but a crash right after the rename may leave a
	// damaged file.
	NoFsync bool
	// Progress, if set, is called from time to time, from several
	// goroutines.
	Progress func(Progress)
}

// Sync rebuilds opts.Output from local data and the missing blocks read from
// the source, verifies it against the control file's whole-file hash, and
// only then renames it into place. On failure the existing output is left as
// it was and the partial result stays in Output+".part", to be used as a
// seed by the next run.
func Sync(ctx context.Context, opts SyncOptions) (*Summary, error) {
	start := time.Now()
	f := opts.Control
	if f == nil {
		return nil, fmt.Errorf("sync: no control file: %w", ErrUsage)
	}
	if opts.Output == "" {
		return nil, fmt.Errorf("sync: no output path: %w", ErrUsage)
	}
	out := opts.Output
	part := out + ".part"
	sum := &Summary{Output: out, Length: f.Length}

	// Open the seeds: those asked for, the existing output, and an earlier
	// partial result, set aside so that the new one can be written.
	paths := append([]string(nil), opts.Seeds...)
	var setAside string
	if _, err := os.Stat(part); err == nil {
		setAside = part + ".seed"
		if err := os.Rename(part, setAside); err != nil {
			return nil, fmt.Errorf("sync: set aside %s: %w", part, err)
		}
		paths = append(paths, setAside)
	} else if _, err := os.Stat(part + ".seed"); err == nil {
		setAside = part + ".seed"
		paths = append(paths, setAside)
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(out); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("sync: %s exists and is not a regular file: %w", out, ErrUsage)
		}
		mode = fi.Mode().Perm()
		paths = append(paths, out)
	}
	seeds, closeSeeds, err := openSeeds(paths, opts.Seeds)
	if err != nil {
		return nil, err
	}
	defer closeSeeds()
	var seedBytes int64
	for _, s := range seeds {
		sum.Seeds = append(sum.Seeds, s.Name)
		seedBytes += s.Size
	}

	w, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return nil, fmt.Errorf("sync: create %s: %w", part, err)
	}
	keep := false
	defer func() {
		if !keep {
			w.Close()
		}
	}()
	if err := w.Truncate(f.Length); err != nil {
		return nil, fmt.Errorf("sync: size %s: %w", part, err)
	}

	hasher, err := simd.NewHasher(f.StrongAlgorithm, simd.Options{Fallback: opts.NoSIMD})
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	defer hasher.Close()

	var scanned, fetched atomic.Int64
	progress := func(phase string, done, total int64) {
		if opts.Progress != nil {
			opts.Progress(Progress{Phase: phase, Done: done, Total: total})
		}
	}
	pt := stages.NewPatcher(w, &f.Header)
	p := pipeline.New(pipeline.Config{Workers: opts.Workers})
	deltaOut, matches, scanDone, err := stages.DeltaStage(p, f, seeds, stages.DeltaOptions{
		Workers:  opts.Workers,
		Hasher:   hasher,
		Progress: func(n int64) { progress("scan", scanned.Add(n), seedBytes) },
	})
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	var plan *stages.Plan
	var src stages.RangeSource
	fetchOut := stages.FetchStage(p, f,
		func() (stages.RangeSource, error) {
			if opts.Source != nil {
				src = opts.Source
				return src, nil
			}
			s, err := localSource(f, opts.BaseURL)
			src = s
			return s, err
		},
		scanDone,
		func() []stages.Range {
			plan = stages.Blueprint(&f.Header, matches)
			return plan.Missing
		},
		stages.FetchOptions{
			Hasher:   hasher,
			Progress: func(n int64) { progress("fetch", fetched.Add(n), plan.MissingBytes) },
		})
	stages.PatchStage(p, pipeline.Merge(p, "merge", deltaOut, fetchOut), pt)
	runErr := p.Run(ctx)
	if c, ok := src.(io.Closer); ok && opts.Source == nil {
		c.Close()
	}
	sum.Stages = p.Stats()
	if plan != nil {
		sum.Reused = plan.Reused
	}
	sum.Fetched = fetched.Load()
	if st, ok := src.(interface{ Stats() SourceStats }); ok {
		s := st.Stats()
		sum.Requests, sum.Ranges, sum.Overhead = s.Requests, s.Ranges, s.Overhead
	}
	if runErr != nil {
		keepProgress(w, part, setAside, plan, pt)
		keep = true
		return sum, fmt.Errorf("sync %s: %w", out, runErr)
	}
	if err := pt.Finish(); err != nil {
		return sum, fmt.Errorf("sync %s: %w", out, err)
	}
	// Every block is in the new partial result: the old one has served.
	if setAside != "" {
		os.Remove(setAside)
	}

	progress("verify", 0, f.Length)
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return sum, fmt.Errorf("sync: %w", err)
	}
	if err := stages.Verify(ctx, w, &f.Header); err != nil && !errors.Is(err, stages.ErrNoFileHash) {
		if errors.Is(err, stages.ErrMismatch) {
			return sum, fmt.Errorf("sync %s: %w: %w", out, ErrVerify, err)
		}
		return sum, fmt.Errorf("sync %s: %w", out, err)
	}
	progress("verify", f.Length, f.Length)
	if !opts.NoFsync {
		if err := w.Sync(); err != nil {
			return sum, fmt.Errorf("sync: flush %s: %w", part, err)
		}
	}
	keep = true
	if err := w.Close(); err != nil {
		return sum, fmt.Errorf("sync: close %s: %w", part, err)
	}
	if !f.MTime.IsZero() {
		if err := os.Chtimes(part, f.MTime, f.MTime); err != nil {
			return sum, fmt.Errorf("sync: set mtime of %s: %w", part, err)
		}
	}
	if err := os.Rename(part, out); err != nil {
		return sum, fmt.Errorf("sync: rename %s to %s: %w", part, out, err)
	}
	sum.Duration = time.Since(start)
	return sum, nil
}

// keepProgress decides, after a failed run, which partial result to keep
// for the next run: the new one when it holds every block found locally
// (then the set-aside seed is no longer needed), otherwise the earlier one.
func keepProgress(w *os.File, part, setAside string, plan *stages.Plan, pt *stages.Patcher) {
	w.Close()
	if setAside == "" {
		return
	}
	complete := plan != nil
	if complete {
	copies:
		for _, c := range plan.Copies {
			for i := c.Index; i < c.Index+c.Count; i++ {
				if !pt.Done(i) {
					complete = false
					break copies
				}
			}
		}
	}
	if complete {
		os.Remove(setAside)
		return
	}
	os.Remove(part)
	os.Rename(setAside, part)
}

// SourceStats is what a RangeSource may report about its downloads, through
// a Stats() SourceStats method, for the summary.
type SourceStats struct {
	Requests, Ranges, Overhead int64
}

// openSeeds opens the seed files, skipping repeats of the same file. Files
// named in explicit must exist; the others are skipped when they do not.
func openSeeds(paths, explicit []string) ([]stages.Seed, func(), error) {
	var seeds []stages.Seed
	var files []*os.File
	var infos []os.FileInfo
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for i, path := range paths {
		fh, err := os.Open(path)
		if err != nil {
			if i >= len(explicit) && errors.Is(err, os.ErrNotExist) {
				continue
			}
			closeAll()
			return nil, nil, fmt.Errorf("sync: open seed: %w", err)
		}
		fi, err := fh.Stat()
		if err != nil {
			fh.Close()
			closeAll()
			return nil, nil, fmt.Errorf("sync: seed %s: %w", path, err)
		}
		if !fi.Mode().IsRegular() {
			fh.Close()
			closeAll()
			return nil, nil, fmt.Errorf("sync: seed %s is not a regular file: %w", path, ErrUsage)
		}
		dup := false
		for _, o := range infos {
			if os.SameFile(o, fi) {
				dup = true
			}
		}
		if dup {
			fh.Close()
			continue
		}
		files, infos = append(files, fh), append(infos, fi)
		seeds = append(seeds, stages.Seed{Name: path, R: fh, Size: fi.Size()})
	}
	return seeds, closeAll, nil
}

// localSource resolves the control file's URLs against base and returns a
// source reading the first that names a readable local file.
func localSource(f *control.File, base string) (stages.RangeSource, error) {
	if len(f.URLs) == 0 {
		return nil, errors.New("control file lists no URL for the missing blocks")
	}
	var errs []error
	for _, u := range f.URLs {
		path, err := localPath(u, base)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fh, err := os.Open(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fi, err := fh.Stat()
		if err != nil || fi.Size() < f.Length {
			fh.Close()
			errs = append(errs, fmt.Errorf("%s is shorter than the target", path))
			continue
		}
		return &fileSource{ReaderAtSource: stages.ReaderAtSource{R: fh}, f: fh}, nil
	}
	return nil, fmt.Errorf("no usable source for the missing blocks: %w", errors.Join(errs...))
}

// localPath turns a URL of the control file into a local path.
func localPath(raw, base string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme == "file":
		return u.Path, nil
	case u.Scheme != "":
		return "", fmt.Errorf("URL %q: scheme %q is not supported here", raw, u.Scheme)
	case filepath.IsAbs(raw):
		return raw, nil
	}
	if strings.HasPrefix(base, "file://") {
		bu, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("base URL %q: %w", base, err)
		}
		base = bu.Path
	}
	return filepath.Join(base, filepath.FromSlash(u.Path)), nil
}

// fileSource is a local file serving as the source of missing blocks.
type fileSource struct {
	stages.ReaderAtSource
	f *os.File
}

// Close closes the file.
func (s *fileSource) Close() error { return s.f.Close() }
