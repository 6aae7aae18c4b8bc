package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

const syncIntro = `
sync rebuilds the file that the control file CONTROL describes. It scans the
seed files given with -i, the existing output file and the output's .part file
for blocks of the target, fetches the missing blocks from the URLs of the
control file, checks the whole-file hash and only then renames the result into
place: a failed sync leaves an existing output file unchanged.

CONTROL is a local .zsync file or an http(s) or sftp:// URL of one (redirects
are followed; with -k, a saved copy is reused when the server says it has not
changed). Relative URLs in it are resolved against the -u base URL, or else
against the control file's own location. sftp:// URLs log in as ssh(1) does
(the agent, then ~/.ssh/id_* or --identity; a password only with
--ssh-password) and trust only host keys in ~/.ssh/known_hosts or
--known-hosts. Missing blocks are fetched from every
URL of the control file and every --url at once, several requests in flight,
several ranges per request; a mirror that fails or serves bad blocks is
dropped. An interrupted sync leaves OUTPUT.part and OUTPUT.part.state: running
the same command again goes on from there.

The output file is the control file's Filename in the current directory unless
-o is given.`

// cmdSync implements "zsyncpipe sync".
func cmdSync(ctx context.Context, e *env, args []string) error {
	defer commandGC(syncGCPercent)()
	fs := newFlagSet(e, "sync", syncIntro)
	var seeds listFlag
	fs.Var(&seeds, "i", "`seed` file that may hold parts of the target; may be repeated")
	out := fs.String("o", "", "write the result to `path` (default: the control file's Filename in the current directory)")
	keep := fs.String("k", "", "save a copy of the control file at `path`")
	base := fs.String("u", "", "`URL` the control file came from, to resolve its relative URLs")
	quiet := fs.Bool("q", false, "print nothing but errors")
	fs.BoolVar(quiet, "s", false, "same as -q (zsync's deprecated synonym)")
	var mirrors listFlag
	fs.Var(&mirrors, "url", "further `URL` of the target to fetch from, beside the control file's; may be repeated")
	parallel := fs.Int("parallel", stages.DefaultConcurrency, "`n` range requests in flight at once")
	hf := addHTTPFlags(fs)
	verbose := fs.Bool("v", false, "print per-stage statistics and notes")
	noFsync := fs.Bool("no-fsync", false, "do not flush the result to disk before renaming it into place (faster; a crash right after may leave a damaged file)")
	sshOpts := addSSHFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("sync", "want exactly one CONTROL file, got %d arguments", len(pos))
	}

	if *parallel < 1 {
		return usagef("sync", "--parallel must be at least 1")
	}
	httpOpts, err := hf.options(pos[0])
	if err != nil {
		return err
	}

	sftp, err := sshOpts.pool(httpOpts.Retries, *verbose, e.stderr)
	if err != nil {
		return err
	}
	defer sftp.Close()
	transports := zsyncpipe.Transports{"sftp": zsyncpipe.SFTPTransport(sftp)}
	ctl, err := zsyncpipe.LoadControl(ctx, pos[0], zsyncpipe.LoadOptions{Keep: *keep, BaseURL: *base, HTTP: httpOpts, Transports: transports})
	if err != nil {
		return err
	}
	output := *out
	if output == "" {
		if err := checkFilename(ctl.File.Filename); err != nil {
			return fmt.Errorf("%s: %w; use -o to name the output", pos[0], err)
		}
		output = ctl.File.Filename
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
		Control:    ctl.File,
		Output:     output,
		Seeds:      seeds,
		BaseURL:    ctl.BaseURL,
		MirrorURLs: mirrors,
		NoFsync:    *noFsync,
		HTTP:       httpOpts,
		Transports: transports,
		Fetch:      stages.FetchLimits{Concurrency: *parallel},
		Progress:   prog.callback(),
		Logf:       logf,
	})
	prog.clear()
	if *verbose && sum != nil && len(sum.Stages) > 0 {
		pipeline.FormatStats(e.stderr, sum.Stages)
		fmt.Fprintf(e.stderr, "timeline: %v\n", sum.Timeline)
		printMemory(e.stderr)
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

// checkFilename checks that name, a control file's Filename, is a plain file
// name that cannot write outside the current directory, nor to another file
// than it says on this system.
func checkFilename(name string) error {
	return checkFilenameFor(runtime.GOOS, name)
}

// checkFilenameFor is checkFilename with the naming rules of goos: on
// Windows no device name (NUL, CON…), trailing dot or space, ':' or '\'
// (relpath.CheckFor).
func checkFilenameFor(goos, name string) error {
	if name == "" {
		return fmt.Errorf("%w: no Filename", errBadControl)
	}
	err := relpath.CheckName(name)
	if err == nil {
		err = relpath.CheckFor(goos, name)
	}
	if err != nil {
		return fmt.Errorf("%w: Filename %w", errBadControl, err)
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

// httpFlags are the flags of sync that configure HTTP downloads.
type httpFlags struct {
	auth      listFlag
	maxRanges *int
	retries   *int
	maxWait   *time.Duration
	caFile    *string
}

// addHTTPFlags defines the HTTP flags in fs.
func addHTTPFlags(fs *flagSet) *httpFlags {
	hf := &httpFlags{}
	fs.Var(&hf.auth, "A", "credentials for HTTP Basic auth, sent only to that host (`host=user:pass`); may be repeated")
	hf.maxRanges = fs.Int("max-ranges", httpsource.DefaultMaxRanges, "`n` ranges per HTTP request to start with (halved while a server refuses)")
	hf.retries = fs.Int("retries", httpsource.DefaultRetries, "`n` retries of a failed request, with exponential backoff")
	hf.maxWait = fs.Duration("max-wait", httpsource.DefaultMaxWait, "give up after waiting `d` in all without receiving a block (stalls, backoff, Retry-After)")
	hf.caFile = fs.String("ca-file", "", "PEM `file` of further certificate authorities to trust for https (beside the system's, and SSL_CERT_FILE/SSL_CERT_DIR)")
	return hf
}

// options checks the flags and returns the HTTP options for a sync of the
// control file at control.
func (hf *httpFlags) options(control string) (httpsource.Options, error) {
	if *hf.maxRanges < 1 || *hf.retries < 0 {
		return httpsource.Options{}, usagef("sync", "--max-ranges must be at least 1, --retries at least 0")
	}
	if *hf.maxWait <= 0 {
		return httpsource.Options{}, usagef("sync", "--max-wait must be positive")
	}
	o := httpsource.Options{MaxRanges: *hf.maxRanges, Retries: *hf.retries, MaxWait: *hf.maxWait, CAFile: *hf.caFile}
	if *hf.retries == 0 {
		o.Retries = -1
	}
	for _, a := range hf.auth {
		host, c, err := httpsource.ParseCredentials(a)
		if err != nil {
			return httpsource.Options{}, usagef("sync", "-A %s: %v", a, err)
		}
		if o.Credentials == nil {
			o.Credentials = map[string]httpsource.Credentials{}
		}
		o.Credentials[host] = c
	}
	// Credentials in the control file's URL serve its data on the same
	// host too, and no other host.
	return o.WithURLCredentials(control), nil
}
