package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/relpath"
)

const makeIntro = `
make computes the control file (.zsync) of FILE and writes it to FILE.zsync in
the current directory, or to the path given with -o. The control file is
written to a temporary file first and renamed into place when complete.

Without -u, the control file gets one relative URL: the path of FILE as seen
from the directory of the control file, so the two must be published in the
same relative places.

The default format is spec 0.8 (MD5 block hashes, SHA-256 file hash), read by
zsyncpipe and zsync 0.7+. Use --legacy for clients of zsync 0.6.2, such as the
zsync package of Debian and Ubuntu: it writes MD4 block hashes and a SHA-1.`

// cmdMake implements "zsyncpipe make".
func cmdMake(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "make", makeIntro)
	var (
		bs   blocksizeFlag
		urls listFlag
	)
	fs.Var(&bs, "b", "block size, a power of two (`blocksize`: 2048, 4KiB); default 2048 below 100 MB, else 4096")
	out := fs.String("o", "", "write the control file to `path` (default: FILE's base name + .zsync in the current directory)")
	fs.Var(&urls, "u", "`URL` of the file, absolute or relative to the control file; may be repeated")
	filename := fs.String("f", "", "`name` for the Filename header, the name clients save the file as (default: FILE's base name)")
	legacy := fs.Bool("legacy", false, "write the zsync 0.6.2 format (MD4, SHA-1) for zsync 0.6.2 clients")
	quiet := fs.Bool("q", false, "print nothing but errors")
	verbose := fs.Bool("v", false, "print per-stage statistics")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("make", "want exactly one FILE, got %d arguments", len(pos))
	}
	path := pos[0]
	if *filename != "" {
		if err := relpath.CheckName(*filename); err != nil {
			return usagef("make", "-f %v: the file name must not contain '/' or be . or ..", err)
		}
	}
	if *out == "" {
		*out = filepath.Base(path) + ".zsync"
	}
	if len(urls) == 0 {
		urls = listFlag{relativeURL(*out, path)}
	}

	prog := newProgress(e.stderr, *quiet)
	start := time.Now()
	f, err := zsyncpipe.MakeFile(ctx, path, zsyncpipe.MakeOptions{
		Blocksize: int(bs),
		Legacy:    *legacy,
		Filename:  *filename,
		URLs:      urls,
		Progress:  prog.callback(),
		Stats: func(st []pipeline.StageStats) {
			if *verbose {
				prog.clear()
				pipeline.FormatStats(e.stderr, st)
			}
		},
	})
	prog.clear()
	if err != nil {
		return err // "make: ..."
	}
	size, err := atomicfile.Write(*out, 0o644, func(w io.Writer) error { return control.Write(w, f) })
	if err != nil {
		return fmt.Errorf("write control file: %w", err)
	}
	elapsed := time.Since(start)
	if !*quiet {
		format := "spec 0.8"
		if *legacy {
			format = "legacy 0.6.2"
		}
		fmt.Fprintf(e.stdout, "%s: %d blocks of %s (%s), control file %s, in %s, %s\n",
			*out, f.Blocks(), humanize.IBytes(uint64(f.Blocksize)), format,
			humanize.IBytes(uint64(size)), seconds(elapsed), rate(f.Length, elapsed))
	}
	return nil
}

// relativeURL returns the URL of target relative to the directory of the
// control file at controlPath, as zsyncmake does when it has no -u. It falls
// back to target's base name when no relative path exists.
func relativeURL(controlPath, target string) string {
	rel := filepath.Base(target)
	ac, err1 := filepath.Abs(controlPath)
	at, err2 := filepath.Abs(target)
	if err1 == nil && err2 == nil {
		if r, err := filepath.Rel(filepath.Dir(ac), at); err == nil {
			rel = r
		}
	}
	// url.URL escapes what needs escaping and protects a colon in the
	// first segment with "./".
	return (&url.URL{Path: filepath.ToSlash(rel)}).String()
}
