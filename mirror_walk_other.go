//go:build !linux

package zsyncpipe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// walkTree calls fn with the slash-separated path relative to root and
// the lstat of everything below root, without following symlinks, except
// the paths skip names (and what is below them). A root that does not
// exist is empty; a directory that cannot be read is an error.
//
// keep is not used on this system (see the Linux version).
func walkTree(root string, skip func(rel string) bool, fn func(rel string, fi fs.FileInfo), _ func(rel string, d *os.File, fd int) bool) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipAll
			}
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		fn(rel, fi)
		return nil
	})
}
