package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

const syncIntro = `
sync rebuilds the file that the control file CONTROL describes. It scans the
seed files given with -i, the existing output file and the output's .part file
for blocks of the target, fetches the missing blocks from the URLs of the
control file, checks the whole-file hash and only then renames the result into
place: a failed sync leaves an existing output file unchanged.

CONTROL is a local .zsync file or an http(s) URL of one (redirects are
followed; with -k, a saved copy is reused when the server says it has not
changed). Relative URLs in it are resolved against the -u base URL, or else
against the control file's own location. Missing blocks are fetched from every
URL of the control file and every --url at once, several requests in flight,
several ranges per request; a mirror that fails or serves bad blocks is
dropped. An interrupted sync leaves OUTPUT.part and OUTPUT.part.state: running
the same command again goes on from there.

The output file is the control file's Filename in the current directory unless
-o is given.`

// cmdSync implements "zsyncpipe sync".
func cmdSync(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "sync", syncIntro)
	var seeds listFlag
	fs.Var(&seeds, "i", "`seed` file that may hold parts of the target; may be repeated")
	out := fs.String("o", "", "write the result to `path` (default: the control file's Filename in the current directory)")
	keep := fs.String("k", "", "save a copy of the control file at `path`")
	base := fs.String("u", "", "`URL` the control file came from, to resolve its relative URLs")
	quiet := fs.Bool("q", false, "print nothing but errors")
	fs.BoolVar(quiet, "s", false, "same as -q (zsync's deprecated synonym)")
	var auth, mirrors listFlag
	fs.Var(&auth, "A", "credentials for HTTP Basic auth, sent only to that host (`host=user:pass`); may be repeated")
	fs.Var(&mirrors, "url", "further `URL` of the target to fetch from, beside the control file's; may be repeated")
	parallel := fs.Int("parallel", stages.DefaultConcurrency, "range requests in flight at once")
	maxRanges := fs.Int("max-ranges", httpsource.DefaultMaxRanges, "ranges per HTTP request to start with (halved while a server refuses)")
	retries := fs.Int("retries", httpsource.DefaultRetries, "retries of a failed request, with exponential backoff")
	verbose := fs.Bool("v", false, "print per-stage statistics and notes")
	noFsync := fs.Bool("no-fsync", false, "do not flush the result to disk before renaming it into place (faster; a crash right after may leave a damaged file)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("sync", "want exactly one CONTROL file, got %d arguments", len(pos))
	}

	httpOpts := httpsource.Options{MaxRanges: *maxRanges, Retries: *retries}
	if *retries == 0 {
		httpOpts.Retries = -1
	}
	for _, a := range auth {
		host, c, err := httpsource.ParseCredentials(a)
		if err != nil {
			return usagef("sync", "-A %s: %v", a, err)
		}
		if httpOpts.Credentials == nil {
			httpOpts.Credentials = map[string]httpsource.Credentials{}
		}
		httpOpts.Credentials[host] = c
	}
	// Credentials in the control file's URL serve its data on the same
	// host too, and no other host.
	httpOpts = httpOpts.WithURLCredentials(pos[0])
	if *parallel < 1 || *maxRanges < 1 || *retries < 0 {
		return usagef("sync", "--parallel and --max-ranges must be at least 1, --retries at least 0")
	}

	ctl, err := loadControl(ctx, pos[0], *base, *keep, httpOpts)
	if err != nil {
		return err
	}
	output := *out
	if output == "" {
		if err := checkFilename(ctl.file.Filename); err != nil {
			return fmt.Errorf("%s: %w; use -o to name the output", pos[0], err)
		}
		output = ctl.file.Filename
	}
	if *keep != "" && !ctl.kept {
		if _, err := writeFileAtomic(*keep, func(w io.Writer) error {
			return ctl.save(w)
		}); err != nil {
			return fmt.Errorf("save control file: %w", err)
		}
	}

	prog := newProgress(e.stderr, *quiet)
	start := time.Now()
	logf := func(format string, args ...any) {
		prog.clear()
		fmt.Fprintf(e.stderr, "zsyncpipe: "+format+"\n", args...)
	}
	if *quiet {
		logf = nil
	}
	sum, err := zsyncpipe.Sync(ctx, zsyncpipe.SyncOptions{
		Control:    ctl.file,
		Output:     output,
		Seeds:      seeds,
		BaseURL:    ctl.base,
		MirrorURLs: mirrors,
		NoFsync:    *noFsync,
		HTTP:       httpOpts,
		Fetch:      stages.FetchOptions{Concurrency: *parallel},
		Progress:   prog.callback(),
		Logf:       logf,
	})
	prog.clear()
	if *verbose && sum != nil && len(sum.Stages) > 0 {
		pipeline.FormatStats(e.stderr, sum.Stages)
	}
	if err != nil {
		return err // "sync: ..." or "sync OUTPUT: ..."
	}
	if sum.Duration <= 0 {
		sum.Duration = time.Since(start)
	}
	if !*quiet {
		fmt.Fprintln(e.stdout, formatSummary(filepath.Base(output), sum))
	}
	return nil
}

// remoteControl downloads a control file. With a saved copy at keep, it
// asks only for a newer one (If-Modified-Since) and reuses the copy when
// the server says it has not changed.
func remoteControl(ctx context.Context, arg, keep string, opts httpsource.Options) (raw []byte, final string, kept bool, err error) {
	var since time.Time
	if keep != "" {
		if fi, err := os.Stat(keep); err == nil {
			since = fi.ModTime()
		}
	}
	d, err := httpsource.Download(ctx, arg, opts, since)
	if err != nil {
		return nil, "", false, fmt.Errorf("download control file: %w: %w", zsyncpipe.ErrFetch, err)
	}
	if d.NotModified {
		raw, err := os.ReadFile(keep)
		if err != nil {
			return nil, "", false, fmt.Errorf("read saved control file: %w", err)
		}
		return raw, d.FinalURL.String(), true, nil
	}
	if keep != "" {
		if _, err := writeFileAtomic(keep, func(w io.Writer) error {
			_, err := w.Write(d.Body)
			return err
		}); err != nil {
			return nil, "", false, fmt.Errorf("save control file: %w", err)
		}
		if !d.LastModified.IsZero() {
			os.Chtimes(keep, d.LastModified, d.LastModified)
		}
	}
	return d.Body, d.FinalURL.String(), true, nil
}

// formatSummary returns the one-line report of a sync, e.g.
// "go1.26.8.tar: 214 MiB (205 MiB reused from local data, 9.4 MiB fetched in
// 12 ranges, 3 requests, 9.5 MiB downloaded) in 0.31s, 725 MB/s of output".
// Fetched counts the target's bytes that came from the network, each once;
// downloaded counts every byte received (bodies and headers, retries, gaps
// and whole-file answers included); the rate is the target's size over the
// wall time, not a network speed.
func formatSummary(name string, s *zsyncpipe.Summary) string {
	if s.UpToDate {
		return fmt.Sprintf("%s: %s already up to date, nothing written (checked in %s)", name, humanize.IBytes(uint64(s.Length)), seconds(s.Duration))
	}
	fetched := humanize.IBytes(uint64(s.Fetched)) + " fetched"
	if s.Ranges > 0 {
		fetched += " in " + plural(s.Ranges, "range")
	}
	if s.Requests > 0 && s.Requests != s.Ranges {
		fetched += ", " + plural(s.Requests, "request")
	}
	if s.Downloaded > 0 {
		fetched += ", " + humanize.IBytes(uint64(s.Downloaded)) + " downloaded"
	}
	return fmt.Sprintf("%s: %s (%s reused from local data, %s) in %s, %s of output",
		name, humanize.IBytes(uint64(s.Length)), humanize.IBytes(uint64(s.Reused)),
		fetched, seconds(s.Duration), rate(s.Length, s.Duration))
}

// loadedControl is a parsed control file and where it came from.
type loadedControl struct {
	file *control.File
	// save writes the control file's bytes as read, for -k.
	save func(io.Writer) error
	// base is the URL that the control file's relative URLs resolve
	// against.
	base string
	// kept reports that the -k copy is already up to date.
	kept bool
}

// isRemote reports whether a CONTROL argument names a URL rather than a
// local path.
func isRemote(arg string) bool {
	u, err := url.Parse(arg)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// loadControl reads and parses the control file named by arg, a path or an
// http(s) URL. base, if not empty, overrides the URL that relative URLs
// resolve against; keep is the -k path.
func loadControl(ctx context.Context, arg, base, keep string, opts httpsource.Options) (*loadedControl, error) {
	var f *control.File
	var save func(io.Writer) error
	var kept bool
	if isRemote(arg) {
		raw, final, k, err := remoteControl(ctx, arg, keep, opts)
		if err != nil {
			return nil, err
		}
		if base == "" {
			base = final
		}
		if f, err = control.Read(bytes.NewReader(raw)); err != nil {
			// err says "control file: ..." already.
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
		kept = k
		save = func(w io.Writer) error { _, err := w.Write(raw); return err }
	} else {
		// Parsed as a stream: a huge or hostile file is refused after
		// its first bytes, never held whole in memory.
		fh, err := os.Open(arg)
		if err != nil {
			return nil, fmt.Errorf("read control file: %w", err)
		}
		f, err = control.Read(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
		save = func(w io.Writer) error {
			fh, err := os.Open(arg)
			if err != nil {
				return err
			}
			defer fh.Close()
			_, err = io.Copy(w, fh)
			return err
		}
		if base == "" {
			abs, err := filepath.Abs(arg)
			if err != nil {
				return nil, fmt.Errorf("control file %s: %w", arg, err)
			}
			base = abs
		}
	}
	return &loadedControl{file: f, save: save, base: baseDir(base), kept: kept}, nil
}

// baseDir turns the URL or path that a control file came from (zsync's -u)
// into the base that zsyncpipe.SyncOptions.BaseURL wants: the directory that
// relative URLs resolve against. "srv/x.zsync" gives "srv",
// "file:///srv/x.zsync" gives "file:///srv/", and a path or URL ending in
// '/' is a directory already.
func baseDir(from string) string {
	if u, err := url.Parse(from); err == nil && len(u.Scheme) > 1 {
		return u.ResolveReference(&url.URL{Path: "./"}).String()
	}
	if strings.HasSuffix(from, "/") || strings.HasSuffix(from, string(filepath.Separator)) {
		return from
	}
	return filepath.Dir(from)
}

// checkFilename checks that name, a control file's Filename, is a plain file
// name that cannot write outside the current directory.
func checkFilename(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: no Filename", errBadControl)
	case name == "." || name == "..",
		strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("%w: Filename %q is not a plain file name", errBadControl, name)
	}
	return nil
}

// plural returns e.g. "1 range" or "12 ranges".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
