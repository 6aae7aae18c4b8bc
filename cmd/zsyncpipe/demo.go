package main

import (
	"context"
	"fmt"

	"github.com/zsyncpipe/zsyncpipe/demo"
)

const demoIntro = `
demo shows zsyncpipe at work without any setup: it generates an old and a new
version of a sample data set (deterministic for a given -seed; the new version
has inserts, deletes, overwrites and moves of the old), makes the control file
of the new version, serves both from a loopback HTTP server inside the process,
syncs the old version to the new one over HTTP (the control file, then only the
missing ranges), verifies that the result is byte-identical, prints the
per-stage statistics and removes its working directory.

With --announce it shows the announce/subscribe flow instead: an MQTT broker
inside the process, a publisher and its web server, a subscriber holding the
old version; the new version is announced as a Sarracenia v03 message (its
control file inline) and the subscriber delta-syncs its copy.`

// cmdDemo implements "zsyncpipe demo".
func cmdDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "demo", demoIntro)
	size := sizeFlag(demo.DefaultSize)
	var bs blocksizeFlag
	fs.Var(&size, "size", "approximate `size` of the data set (32MiB, 100MB, ...)")
	seed := fs.Uint64("seed", 1, "`seed` of the generator")
	fs.Var(&bs, "b", "block size, a power of two (`blocksize`); default as make")
	legacy := fs.Bool("legacy", false, "use the zsync 0.6.2 format (MD4, SHA-1)")
	keep := fs.Bool("keep", false, "keep the working directory and print its path")
	dir := fs.String("dir", "", "create the working directory in `dir` (default: the system's temporary directory)")
	ann := fs.Bool("announce", false, "demonstrate announcements instead: an embedded broker, a publisher, a subscriber with the old version")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("demo", "no arguments expected")
	}
	if size <= 0 {
		return usagef("demo", "-size must be positive")
	}
	runDemo := demo.Run
	if *ann {
		runDemo = demo.RunAnnounce
	}
	if err := runDemo(ctx, e.stdout, demo.Options{
		Size:      int64(size),
		Seed:      *seed,
		Blocksize: int(bs),
		Legacy:    *legacy,
		Keep:      *keep,
		Dir:       *dir,
	}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
