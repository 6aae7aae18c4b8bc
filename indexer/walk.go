package indexer

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// tmpSuffix ends the names of the indexer's temporary files.
const tmpSuffix = ".zsyncpipe-tmp"

// isTemp reports whether name is one of the indexer's temporary files.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, tmpSuffix)
}

// WalkDir is the default Walker: it walks the tree on disk with sorted
// directory reads, never follows symlinks (and, reading through an
// os.Root, never leaves the tree even if a directory is swapped for a link
// while it walks), skips treeindex.Dir at the root and the indexer's
// temporary files, and stops with an error wrapping ErrName (and
// relpath.ErrUnsafe) at a name that relpath.Check refuses. Entries that
// vanish during the walk are left out.
func WalkDir(ctx context.Context, dir string, emit func(Item) error) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return walk(ctx, root, "", emit)
}

// walk walks the directory d (rel from the tree's root). Each directory is
// its own os.Root, so every lookup is one step from an open directory.
func walk(ctx context.Context, d *os.Root, rel string, emit func(Item) error) error {
	f, err := d.Open(".")
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if (rel == "" && name == treeindex.Dir) || isTemp(name) {
			continue
		}
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		if err := relpath.Check(p); err != nil {
			return nameError(err)
		}
		info, err := d.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		it := Item{Path: p, Info: info}
		if info.Mode()&fs.ModeSymlink != 0 {
			if it.Target, err = d.Readlink(name); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
		}
		if err := emit(it); err != nil {
			return err
		}
		if info.IsDir() {
			sub, err := d.OpenRoot(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			err = walk(ctx, sub, p, emit)
			sub.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// nameError wraps err as a refused name: it matches ErrName, err and
// zsyncpipe.ErrUsage (which the command maps to its usage exit code).
func nameError(err error) error { return &refusedName{err} }

type refusedName struct{ err error }

func (e *refusedName) Error() string   { return ErrName.Error() + ": " + e.err.Error() }
func (e *refusedName) Unwrap() []error { return []error{ErrName, e.err, zsyncpipe.ErrUsage} }
