package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
)

const mirrorIntro = `
mirror makes the directory DIR match the tree published at URL (by
"zsyncpipe index" or "zsyncpipe serve"; URL is the tree's root directory). It
fetches the tree index (only when it changed since the last run), keeps the
files whose size and mtime match what the last run verified (or, with -c,
whose SHA-256 matches), rebuilds changed and new files from every local file
that shares data with them — one scan of the tree for all of them — and
downloads only what no local file holds; small files are fetched whole, many
at once, compressed, except those whose content does not compress (gzip data,
images), which are patched from their old version: only the blocks they lack
are fetched, many files' at once, when the publisher wrote block sums for
them. Where the publisher wrote compressed frames of a file it rebuilds (64
KiB each, LZ4), a frame shorter than the blocks it lacks in it comes instead
of them (--no-frames: never). Directories, symlinks, modes and mtimes follow
the index. Every file
is verified before it is renamed into place; an interrupted mirror resumes
where it stopped. DIR/.zsyncpipe-mirror holds the state between runs; what
it knows of the local files serves a run from another URL too (the next
release published elsewhere): files not touched since are not read again.

The scan reads the old versions of changed files and the files the new tree
drops at every byte offset (moved, renamed, split, edited files), and the
files the new tree keeps unchanged only at block boundaries (their data where
a new file holds whole blocks of it: a copy, a concatenation, a cut at a
block boundary). --scan-unchanged reads those at every offset too (slower:
the whole tree); --skip-unchanged leaves them out. Where a file read at every
offset shares nothing with the new files for 64 KiB, the scan skims: it looks
at 8 KiB of offsets in every 32 KiB until one matches, then goes back 64 KiB
over what it skimmed (40 % of the cost on rebuilt executables; it may miss a
short run of shared data alone among other data). --no-skim looks at every
offset throughout.

Symlinks that point out of DIR are refused unless --allow-outside-links; an
index with unsafe paths is refused before anything changes (exit code 1).`

// cmdMirror implements "zsyncpipe mirror".
func cmdMirror(ctx context.Context, e *env, args []string) error {
	defer commandGC(mirrorGCPercent)()
	fs := newFlagSet(e, "mirror", mirrorIntro)
	del := fs.Bool("delete", false, "remove local files the index does not list (after the new files are in place)")
	checksum := fs.Bool("c", false, "hash local files instead of trusting size and mtime (rsync's -c)")
	fs.BoolVar(checksum, "checksum", false, "same as -c")
	dry := fs.Bool("n", false, "list what would change and the bytes to download; change nothing")
	fs.BoolVar(dry, "dry-run", false, "same as -n")
	skip := fs.Bool("skip-unchanged", false, "scan only changed and removed local files for data, not those the new tree keeps (faster; misses data shared with unchanged files)")
	scanAll := fs.Bool("scan-unchanged", false, "scan the local files the new tree keeps at every byte offset too, not only at block boundaries (slower; also finds their data shifted by part of a block)")
	noFrames := fs.Bool("no-frames", false, "fetch the blocks a rebuilt file lacks as they are, never the publisher's compressed frames of it")
	noSkim := fs.Bool("no-skim", false, "look at every byte offset of changed and removed files, also where they share nothing with the new files (slower on rebuilt executables; finds short runs of shared data the default skims over)")
	recheck := fs.Bool("recheck", false, "look at the local files even when the index has not changed since the last complete run")
	outside := fs.Bool("allow-outside-links", false, "accept symlinks pointing outside DIR")
	parallel := fs.Int("parallel", 16, "`n` files fetched at once")
	retries := fs.Int("retries", httpsource.DefaultRetries, "`n` retries of a failed request, with exponential backoff")
	var auth listFlag
	fs.Var(&auth, "A", "credentials for HTTP Basic auth, sent only to that host (`host=user:pass`); may be repeated")
	noFsync := fs.Bool("no-fsync", false, "do not flush files to disk before renaming them into place")
	quiet := fs.Bool("q", false, "print nothing but errors")
	verbose := fs.Bool("v", false, "print notes (restarts, files fetched whole after a bad control file), exact byte counts, the timeline of the run's phases and its memory")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("mirror", "want URL and DIR, got %d arguments", len(pos))
	}
	if *parallel < 1 || *retries < 0 {
		return usagef("mirror", "--parallel must be at least 1, --retries at least 0")
	}
	if *skip && *scanAll {
		return usagef("mirror", "--skip-unchanged and --scan-unchanged exclude each other")
	}
	httpOpts := httpsource.Options{Retries: *retries}
	if *retries == 0 {
		httpOpts.Retries = -1
	}
	for _, a := range auth {
		host, c, err := httpsource.ParseCredentials(a)
		if err != nil {
			return usagef("mirror", "-A %s: %v", a, err)
		}
		if httpOpts.Credentials == nil {
			httpOpts.Credentials = map[string]httpsource.Credentials{}
		}
		httpOpts.Credentials[host] = c
	}
	prog := newProgress(e.stderr, *quiet)
	logf := func(format string, args ...any) {
		prog.clear()
		fmt.Fprintf(e.stderr, "zsyncpipe: "+format+"\n", args...)
	}
	if *quiet || !*verbose && !*dry {
		logf = nil
	}
	opts := zsyncpipe.MirrorOptions{
		URL: pos[0], Dir: pos[1], HTTP: httpOpts,
		Delete: *del, Checksum: *checksum, DryRun: *dry, AllowOutsideLinks: *outside,
		SkipUnchanged: *skip, ScanUnchanged: *scanAll, NoSkim: *noSkim, NoFrames: *noFrames, Recheck: *recheck, Parallel: *parallel, NoFsync: *noFsync, Logf: logf,
	}
	if cb := prog.callback(); cb != nil {
		opts.Progress = func(p zsyncpipe.MirrorProgress) { cb(mirrorProgress(p)) }
	}
	sum, err := zsyncpipe.Mirror(ctx, opts)
	prog.clear()
	if err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintln(e.stdout, formatMirrorSummary(sum, *dry))
	}
	if *verbose {
		fmt.Fprintf(e.stdout, "bytes: %d reused, %d fetched, %d received in %d requests\n", sum.Reused, sum.Fetched, sum.Downloaded, sum.Requests)
		for _, p := range sum.Phases {
			fmt.Fprintf(e.stdout, "phase %-14s %7.3f s to %7.3f s (%.3f s)\n", p.Name, p.Start.Seconds(), p.End.Seconds(), (p.End - p.Start).Seconds())
		}
		printMemory(e.stdout)
	}
	return nil
}

// mirrorProgress turns the progress of a mirror into a line of the
// progress display: the phase with files done, and bytes of the phase.
func mirrorProgress(p zsyncpipe.MirrorProgress) zsyncpipe.Progress {
	if p.Phase == "scan" {
		return zsyncpipe.Progress{Phase: "scan", Done: p.Scanned, Total: p.ScanTotal}
	}
	return zsyncpipe.Progress{
		Phase: fmt.Sprintf("%s %d/%d files", p.Phase, p.FilesDone, p.FilesTotal),
		Done:  p.Reused + p.Fetched, Total: p.Total,
	}
}

// formatMirrorSummary returns the report of a mirror, e.g. "11523 files:
// 11201 unchanged, 301 updated, 21 new, 3 deleted; 221 MiB reused from local
// data, 9.1 MiB downloaded in 240 requests; generation 7 in 1.32s".
func formatMirrorSummary(s *zsyncpipe.MirrorSummary, dry bool) string {
	files := s.Unchanged + s.Updated + s.New
	verb := "downloaded"
	if dry {
		verb = "to download (dry run)"
		if s.FramesSaved > 0 {
			verb = fmt.Sprintf("to download (dry run; about %s fewer as compressed frames)", humanize.IBytes(uint64(s.FramesSaved)))
		}
	}
	line := fmt.Sprintf("%d files: %d unchanged, %d updated, %d new, %d deleted; %s reused from local data, %s %s",
		files, s.Unchanged, s.Updated, s.New, s.Deleted,
		humanize.IBytes(uint64(s.Reused)), humanize.IBytes(uint64(s.Fetched)), verb)
	if s.Requests > 0 {
		line += fmt.Sprintf(" (%s received in %s)", humanize.IBytes(uint64(s.Downloaded)), plural(s.Requests, "request"))
	}
	if s.Packed > 0 || s.PackFallbacks > 0 {
		line += fmt.Sprintf("; %s from packs", plural(int64(s.Packed), "small file"))
		if s.Patched > 0 {
			line += fmt.Sprintf(" (%d patched from their old version)", s.Patched)
		}
		if s.PackFallbacks > 0 {
			line += fmt.Sprintf(", %d fetched by path instead", s.PackFallbacks)
		}
	}
	if s.Frames > 0 {
		line += fmt.Sprintf("; %s of missing blocks as %s", humanize.IBytes(uint64(s.FramesDecoded)), plural(s.Frames, "compressed frame"))
	}
	if s.NotModified {
		line += "; index not modified"
	}
	if s.Restarts > 0 {
		line += fmt.Sprintf("; restarted %s on a new generation", plural(int64(s.Restarts), "time"))
	}
	return line + fmt.Sprintf("; generation %d in %s", s.Generation, seconds(s.Duration.Round(time.Millisecond)))
}
