//go:build unix

package osfile

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// openNonblock makes open(2) of a FIFO return at once instead of waiting for
// a writer. It has no effect on regular files.
const openNonblock = syscall.O_NONBLOCK

func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

// replace is rename(2), atomic on every Unix file system.
func replace(_ context.Context, src, dst string) error {
	return os.Rename(src, dst)
}

// syncDir fsyncs the directory. File systems that cannot (EINVAL) need not.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// sparse does nothing: Unix file systems with holes make them on Truncate.
func sparse(*os.File) {}
