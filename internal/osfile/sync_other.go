//go:build !linux

package osfile

import (
	"errors"
	"os"
)

// syncData is (*os.File).Sync, which is already the strongest flush of each
// system: fcntl(F_FULLFSYNC) on macOS (falling back to fsync where the file
// system refuses it, as SMB mounts do), FlushFileBuffers on Windows, fsync
// elsewhere.
func syncData(f *os.File) error { return f.Sync() }

// writeback does nothing: only Linux has sync_file_range.
func writeback(*os.File, int64, int64) error { return nil }

// hasWriteback: only Linux has sync_file_range.
const hasWriteback = false

// hasSyncFS: only Linux has syncfs(2).
const hasSyncFS = false

func syncFS(string) error { return errors.ErrUnsupported }

// syncFSFile: only Linux has syncfs(2).
func syncFSFile(*os.File) error { return errors.ErrUnsupported }

// preallocate does nothing: only Linux's fallocate is used.
func preallocate(*os.File, int64) bool { return false }
