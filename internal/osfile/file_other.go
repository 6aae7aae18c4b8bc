//go:build !unix && !windows

package osfile

import (
	"context"
	"os"
)

const openNonblock = 0

func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

func replace(_ context.Context, src, dst string) error { return os.Rename(src, dst) }

func rename(src, dst string) error { return os.Rename(src, dst) }

func syncDir(string) error { return nil }

func sparse(*os.File) {}

func openWrite(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
