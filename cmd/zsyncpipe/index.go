package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/zsyncpipe/zsyncpipe/indexer"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

const indexIntro = `
index publishes the directory tree DIR: it writes the control file of every
regular file of at least --small bytes to DIR/.zsyncpipe/<path>.zsync (with
a relative URL back to the file, so any zsync client can use it from any web
server that answers Range requests) and the tree index
DIR/.zsyncpipe/index.jsonl.gz that lists every file, directory and symlink
(format: docs/trees.md). For "zsyncpipe mirror" it also writes, below
DIR/.zsyncpipe, packs of small files compressed one by one (many per
request), of control files, and of block sums; and the larger files again
in compressed frames of 64 KiB (about half their size on executables:
a mirror takes a frame instead of the blocks it lacks in it when shorter;
--no-frames writes none). Publish DIR, .zsyncpipe included, with any web
server, or with "zsyncpipe serve".

A second run reads only files whose size, mtime or mode changed, and removes
the control files of files that are gone. Every file is written to a
temporary file and renamed, control files before the index that names them,
so a client never sees a half-written file or an index naming a missing
control file. Symlinks are listed, never followed. A name that cannot be
served safely (control characters, backslashes, invalid UTF-8) stops the run
with exit code 3.

With --watch, index keeps running and re-indexes as files appear, change
and disappear (inotify, plus a full rescan every --rescan); a file is
indexed once it has not changed for --settle.

With --append-only, a file that keeps its inode and grows is taken to have
been appended to: only its old last block and the new data are read (the
block records and hash states of the old content are kept in
DIR/.zsyncpipe/.zsyncpipe/grow). A few old blocks are read again to catch a
file rewritten in place, and each growing file is read whole at least every
--rehash. Without it, a file that changed is always read whole.`

// treeFlags are the indexing flags of index and serve.
type treeFlags struct {
	beside, legacy, noSync bool
	appendOnly             bool
	noPacks, packLarge     bool
	noFrames               bool
	packGrace              time.Duration
	small, inline, packMax sizeFlag
	bs                     blocksizeFlag
	workers                int
	settle, rescan, rehash time.Duration
}

func addTreeFlags(fs *flag.FlagSet) *treeFlags {
	f := &treeFlags{small: indexer.DefaultSmall, inline: indexer.DefaultInline, packMax: indexer.DefaultPackMax}
	fs.BoolVar(&f.beside, "beside", false, "write control files beside the files (FILE.zsync) instead of in DIR/.zsyncpipe")
	fs.BoolVar(&f.legacy, "legacy", false, "write control files in the zsync 0.6.2 format (MD4, SHA-1) for zsync 0.6.2 clients")
	fs.Var(&f.small, "small", "files shorter than `size` get no control file (clients fetch them whole); 0 gives every file one")
	fs.Var(&f.inline, "inline", "files of at most `size` bytes are inlined in the index; 0 inlines none")
	fs.Var(&f.bs, "b", "block size of the control files, a power of two (`blocksize`); default by file length")
	fs.IntVar(&f.workers, "j", 0, "files processed at once (`n`); default one per core")
	fs.BoolVar(&f.noSync, "no-fsync", false, "do not fsync control files and the index (still written atomically)")
	fs.DurationVar(&f.settle, "settle", indexer.DefaultSettle, "with --watch and serve: index a file once unchanged for `duration`")
	fs.DurationVar(&f.rescan, "rescan", indexer.DefaultRescan, "with --watch and serve: rescan the whole tree every `duration`")
	fs.BoolVar(&f.appendOnly, "append-only", false, "files that keep their inode and grow are appended to (logs): read only what was added (docs/trees.md)")
	fs.DurationVar(&f.rehash, "rehash", indexer.DefaultRehash, "with --append-only: read a growing file whole at least every `duration`")
	fs.BoolVar(&f.noPacks, "no-packs", false, "write no pack files (small files compressed in DIR/.zsyncpipe/packs, which mirror fetches many per request)")
	fs.BoolVar(&f.noFrames, "no-frames", false, "write no compressed frames (files with a control file larger than --pack-max, again in LZ4-compressed frames in DIR/.zsyncpipe/frames, about half their size; mirror fetches a frame instead of the blocks it lacks when that is shorter)")
	fs.Var(&f.packMax, "pack-max", "also pack (S2) files with a control file of at most `size` bytes, at most 1 MiB (mirror takes a changed one whole and compressed when that is shorter); 0 packs none")
	fs.BoolVar(&f.packLarge, "pack-large", false, "pack files with a control file up to 1 MiB with zstd instead (records a quarter shorter; three times the publisher's CPU for them)")
	fs.DurationVar(&f.packGrace, "pack-grace", indexer.DefaultPackGrace, "keep a pack file the index no longer refers to for `duration` (for clients of an earlier index)")
	return f
}

// options returns the indexer options the flags give; warnings go to w.
func (f *treeFlags) options(w io.Writer) indexer.Options {
	o := indexer.Options{
		Beside: f.beside, Legacy: f.legacy, NoSync: f.noSync,
		Small: int64(f.small), Inline: int64(f.inline),
		Blocksize: int(f.bs), Workers: f.workers,
		Settle: f.settle, Rescan: f.rescan,
		AppendOnly: f.appendOnly, Rehash: f.rehash,
		NoPacks: f.noPacks, NoFrames: f.noFrames, PackLarge: f.packLarge, PackGrace: f.packGrace,
		PackMax: int64(f.packMax),
	}
	if o.PackMax == 0 {
		o.PackMax = -1
	}
	if o.Small == 0 {
		o.Small = -1
	}
	if o.Inline == 0 {
		o.Inline = -1
	}
	var mu sync.Mutex
	o.Warn = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "zsyncpipe: warning: %v\n", err)
	}
	return o
}

// treeDir checks the DIR argument.
func treeDir(cmd string, pos []string) (string, error) {
	if len(pos) != 1 {
		return "", usagef(cmd, "want exactly one DIR, got %d arguments", len(pos))
	}
	fi, err := os.Stat(pos[0])
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if !fi.IsDir() {
		return "", usagef(cmd, "%s is not a directory", pos[0])
	}
	return pos[0], nil
}

// cmdIndex implements "zsyncpipe index".
func cmdIndex(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "index", indexIntro)
	tf := addTreeFlags(fs.FlagSet)
	af := addAnnounceFlags(fs)
	watch := fs.Bool("watch", false, "keep running and keep the index current")
	quiet := fs.Bool("q", false, "print nothing but errors")
	verbose := fs.Bool("v", false, "print every change")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	dir, err := treeDir("index", pos)
	if err != nil {
		return err
	}
	opts := tf.options(e.stderr)
	if *verbose {
		opts.OnChange = func(_ context.Context, c indexer.Change) error {
			fmt.Fprintln(e.stdout, changeText(c))
			return nil
		}
	}
	onChange, closeAnnounce, err := af.hook(ctx, e, "index", dir, "", *verbose, opts.OnChange)
	if err != nil {
		return err
	}
	defer closeAnnounce()
	opts.OnChange = onChange
	if !*watch {
		opts.Settle = 0 // one pass: index what is there now
		res, err := indexer.Index(ctx, dir, opts)
		if err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintln(e.stdout, passText(dir, res))
		}
		if res.Skipped > 0 {
			return fmt.Errorf("index: %d files could not be read and are not published (see the warnings)", res.Skipped)
		}
		return nil
	}
	first := true // Watch calls OnPass from one goroutine
	opts.OnPass = func(res *indexer.Result, err error) {
		if err == nil && !*quiet && (res.Written || *verbose || first) {
			fmt.Fprintln(e.stdout, passText(dir, res))
		}
		first = first && err != nil
	}
	return indexer.Watch(ctx, dir, opts)
}

// passText describes one indexing pass in one line.
func passText(dir string, r *indexer.Result) string {
	state := "unchanged"
	if r.Written {
		state = fmt.Sprintf("%d changes", r.Changes)
	}
	packed := ""
	if r.Packed > 0 || r.ControlsPacked > 0 {
		packed = fmt.Sprintf(", packed %d files and %d control files (%s)", r.Packed, r.ControlsPacked, humanize.IBytes(uint64(r.PackBytes)))
		if r.SumsPacked > 0 {
			packed += fmt.Sprintf(", and the block sums of %d files", r.SumsPacked)
		}
	}
	if r.Framed > 0 {
		packed += fmt.Sprintf("; compressed frames of %s (%s)", plural(int64(r.Framed), "file"), humanize.IBytes(uint64(r.FramesBytes)))
	}
	s := fmt.Sprintf("%s: %d entries, %d files (%s); read %d files (%s), wrote %d control files%s; generation %d, %s; %s",
		dir, r.Entries, r.Files, humanize.IBytes(uint64(r.Bytes)), r.Hashed, humanize.IBytes(uint64(r.HashedBytes)),
		r.Controls, packed, r.Generation, state, seconds(r.Duration))
	if r.Repacked > 0 || r.PacksRemoved > 0 {
		s += fmt.Sprintf("; %d packed files moved to new packs, %d old packs removed", r.Repacked, r.PacksRemoved)
	}
	if r.Extended > 0 {
		s += fmt.Sprintf("; %d grown files read from their old end", r.Extended)
	}
	if r.Skipped > 0 {
		s += fmt.Sprintf("; %d unreadable files skipped", r.Skipped)
	}
	if r.Unsettled > 0 {
		s += fmt.Sprintf("; %d files still changing", r.Unsettled)
	}
	return s
}

// changeText describes one change.
func changeText(c indexer.Change) string {
	if c.Op == indexer.Renamed {
		return fmt.Sprintf("%s %s -> %s", c.Op, c.OldPath, c.Path)
	}
	s := fmt.Sprintf("%s %s", c.Op, c.Path)
	if c.Entry.Type != treeindex.File {
		s += " (" + c.Entry.Type.String() + ")"
	}
	return s
}
