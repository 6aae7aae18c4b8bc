package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/zsyncpipe/zsyncpipe/bench"
)

const benchIntro = `
bench measures make and sync over a sweep of block sizes on one pair of files,
old and new: control-file size, make and sync time and throughput, share of the
target reused, bytes fetched, ranges and requests, total bytes a client
downloads (control file + transfer), and peak memory. Missing blocks are served
by a loopback HTTP server started for the run. When zsync and zsyncmake are on
PATH they run on the same files at the same block sizes in the same run, and the
floor (hashing the target; copying it while hashing; the same copy flushed to
disk, the durable floor a default sync is compared with) is measured alongside, so
every figure can be read as a ratio. So is the disk floor: the target's bytes
written into a new file and flushed, nothing else, the fastest of three ways;
zsync's sync time over it, printed under the table, is the most any tool that
flushes its result can be faster than zsync on this machine. It names the block
size that minimises the bytes downloaded.

The corpus is generated (random data with inserts, deletes, overwrites and
moves; text with line edits; an append-growing file) or any pair given as
OLD,NEW.`

// cmdBench implements "zsyncpipe bench".
func cmdBench(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "bench", benchIntro)
	corpus := fs.String("corpus", "random", "`kind` of generated data (random, text, append), or OLD,NEW files")
	size := sizeFlag(64 << 20)
	fs.Var(&size, "size", "`size` of generated data")
	seed := fs.Uint64("seed", 1, "`seed` of the generator")
	sizes := fs.String("block-sizes", "256-1MiB", "block sizes: a `list` (1KiB,4KiB) or a range of powers of two (256-1MiB)")
	runs := fs.Int("runs", 1, "repeat each step `n` times and keep the fastest")
	legacy := fs.Bool("legacy", false, "make zsync 0.6.2 control files (MD4, SHA-1)")
	noFsync := fs.Bool("no-fsync", false, "sync without flushing the result to disk (compared with the copy+sha256 floor instead of the durable one)")
	noZsync := fs.Bool("no-zsync", false, "do not run zsync even if it is installed")
	needZsync := fs.Bool("zsync", false, "fail unless zsync and zsyncmake are installed")
	jsonOut := fs.Bool("json", false, "print the report as JSON instead of a table")
	plot := fs.String("plot", "", "draw bytes downloaded and sync throughput against block size into the PNG `file`")
	binary := fs.String("binary", "", "zsyncpipe `binary` to measure (default: this one)")
	quiet := fs.Bool("q", false, "do not report each step on stderr")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("bench", "no arguments expected")
	}
	if *noZsync && *needZsync {
		return usagef("bench", "--zsync and --no-zsync exclude each other")
	}
	if *runs < 1 {
		return usagef("bench", "--runs must be at least 1")
	}
	bsList, err := bench.ParseBlockSizes(*sizes)
	if err != nil {
		return usagef("bench", "--block-sizes: %v", err)
	}
	dir, err := os.MkdirTemp("", "zsyncpipe-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := bench.ParseCorpus(dir, *corpus, *seed, int64(size))
	if err != nil {
		return usagef("bench", "--corpus: %v", err)
	}
	opts := bench.Options{
		Corpus:      c,
		BlockSizes:  bsList,
		Binary:      *binary,
		Legacy:      *legacy,
		NoFsync:     *noFsync,
		Runs:        *runs,
		StepTimeout: 10 * time.Minute,
	}
	switch {
	case *noZsync:
		opts.Zsync = bench.ZsyncSkip
	case *needZsync:
		opts.Zsync = bench.ZsyncRequire
	}
	if !*quiet {
		opts.Log = e.stderr
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if *plot != "" {
		if err := rep.WritePlot(*plot); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if *jsonOut {
		return rep.WriteJSON(e.stdout)
	}
	return rep.WriteTable(e.stdout)
}

// cmdBenchChild runs one measured step for bench in a process of its own
// (bench re-executes this binary), so that its peak memory can be read.
func cmdBenchChild(ctx context.Context, e *env, args []string) error {
	return bench.RunChild(ctx, args, e.stdout)
}
