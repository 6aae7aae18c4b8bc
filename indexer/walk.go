package indexer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// directory reads, never follows symlinks, skips treeindex.Dir at the root
// and the indexer's temporary files, and stops with an error wrapping
// ErrName (and relpath.ErrUnsafe) at a name that relpath.Check refuses.
// Entries that vanish during the walk are left out.
func WalkDir(ctx context.Context, dir string, emit func(Item) error) error {
	return walk(ctx, dir, "", emit)
}

func walk(ctx context.Context, root, rel string, emit func(Item) error) error {
	full := filepath.Join(root, filepath.FromSlash(rel))
	ents, err := os.ReadDir(full)
	if err != nil {
		if rel != "" && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("index: %w", err)
	}
	for _, de := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := de.Name()
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
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("index: %w", err)
		}
		it := Item{Path: p, Info: info}
		if info.Mode()&fs.ModeSymlink != 0 {
			if it.Target, err = os.Readlink(filepath.Join(full, name)); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return fmt.Errorf("index: %w", err)
			}
		}
		if err := emit(it); err != nil {
			return err
		}
		if info.IsDir() {
			if err := walk(ctx, root, p, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// nameError wraps err as a refused name: ErrName and zsyncpipe.ErrUsage,
// which the command maps to its usage exit code.
func nameError(err error) error {
	return fmt.Errorf("index: %w: %w (%w)", ErrName, err, zsyncpipe.ErrUsage)
}
