// Package osfile holds the file operations whose right form differs per
// operating system: an exclusive lock on a file, durable flushes, early
// writeback, replacing a file by a rename, sparse files, and opening a file
// that must be a regular one without blocking on a FIFO or a device.
//
// Each operation is a small function here with its system calls in a per-OS
// file (osfile_linux.go, osfile_darwin.go, osfile_windows.go, and the
// _unix/_other files for the rest), so that callers never test runtime.GOOS.
// What differs per OS:
//
//	operation  Linux                     macOS               Windows                        other
//	Lock       flock(LOCK_EX|LOCK_NB)    flock               LockFileEx (1 byte at 2^62)    flock on BSDs; none elsewhere
//	Sync       fdatasync                 fcntl(F_FULLFSYNC)  FlushFileBuffers               fsync
//	Writeback  sync_file_range(WRITE)    no-op               no-op                          no-op
//	Replace    rename                    rename              MoveFileEx, retried on         rename
//	                                                         sharing violations
//	SetTimes   futimes                   futimes             SetFileTime                    chtimes by name
//	SyncDir    fsync of the directory    same                no-op                          same as Linux
//	Sparse     no-op (holes are free)    no-op               FSCTL_SET_SPARSE               no-op
//	OpenFile   open(2)                   open(2)             CreateFile with                open(2)
//	                                                         FILE_SHARE_DELETE
//
// Locks are taken per open file, not per process: two opens of the same
// file in one process exclude each other, and the kernel drops the lock
// when the file is closed or the process dies (kill -9 leaves no stale lock).
package osfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// ErrLocked is returned (wrapped) by Lock and OpenLocked when another open
// file, in this process or another, holds the lock.
var ErrLocked = errors.New("locked by another process")

// ErrNotRegular is returned (wrapped) by OpenRegular, ReadRegular and
// OpenWriteRegular for a path that names a FIFO, a device, a socket, a
// directory or anything else that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Lock takes an exclusive lock on f without waiting: it returns an error
// wrapping ErrLocked at once when another open file holds it. The lock is
// released when f is closed or the process ends. On systems without file
// locks (neither Unix nor Windows) it does nothing.
func Lock(f *os.File) error {
	if err := lock(f); err != nil {
		if errors.Is(err, ErrLocked) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		return &fs.PathError{Op: "lock", Path: f.Name(), Err: err}
	}
	return nil
}

// OpenLocked opens the file at path for reading and writing, creating it
// with perm when it does not exist (never truncating it), and locks it with
// Lock. It then checks that path still names the locked file — another
// process may have renamed or removed it in between — and tries again when
// it does not. An error wrapping ErrLocked means another process holds it.
func OpenLocked(path string, perm os.FileMode) (*os.File, error) {
	for range 8 {
		f, err := OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
		if err != nil {
			return nil, err
		}
		if err := Lock(f); err != nil {
			f.Close()
			return nil, err
		}
		if ok, err := Names(path, f); err != nil {
			f.Close()
			return nil, err
		} else if ok {
			return f, nil
		}
		f.Close() // the path moved on to another file while we locked this one
	}
	return nil, fmt.Errorf("lock %s: the file keeps being replaced: %w", path, ErrLocked)
}

// Names reports whether path names the open file f. A path that no longer
// exists is not an error: it names nothing.
func Names(path string, f *os.File) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

// OpenFile is os.OpenFile, except that on Windows the file is opened with
// FILE_SHARE_DELETE so that it can be renamed (Replace) while it is open and
// locked, and that on Unix the file is not registered with the runtime's
// poller (see OpenWrite). Use it for regular files that are renamed into
// place.
func OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return openFile(name, flag, perm)
}

// OpenWrite is os.OpenFile for a regular file the caller writes, with
// fewer system calls on Unix (see openFile there: two instead of six);
// elsewhere it is os.OpenFile.
func OpenWrite(name string, flag int, perm os.FileMode) (*os.File, error) {
	return openWrite(name, flag, perm)
}

// OpenWriteRegular opens path for writing as OpenWrite does (flag holds
// the access mode, O_CREATE and the like), but only a regular file or a
// new one: anything else at path is refused at once with an error
// wrapping ErrNotRegular. On Unix the open does not block, so a FIFO put
// there between the check and the open fails instead of waiting for a
// reader.
func OpenWriteRegular(path string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	f, err := openWrite(path, flag|openNonblock, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, notRegular(path, fi.Mode())
	}
	return f, nil
}

// Sync flushes f's data to stable storage: fdatasync on Linux (the file's
// size is data, its times are not), F_FULLFSYNC on macOS (a plain fsync
// leaves the data in the drive's cache there), FlushFileBuffers on Windows.
func Sync(f *os.File) error {
	if err := syncData(f); err != nil {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	return nil
}

// Writeback asks the OS to start writing the n bytes of f at off to disk
// now, without waiting for it, so that a final Sync has little left to do
// and dirty pages do not pile up: sync_file_range(SYNC_FILE_RANGE_WRITE) on
// Linux. Elsewhere it does nothing. It is only a hint: the only error is
// that of a file that cannot be used (closed); a failing hint is ignored.
func Writeback(f *os.File, off, n int64) error {
	return writeback(f, off, n)
}

// HasWriteback reports whether Writeback does anything here (Linux).
const HasWriteback = hasWriteback

// SyncDir flushes the directory dir, so that a rename or a new file in it
// survives a crash. It does nothing on Windows, whose file systems journal
// their metadata and cannot open a directory as a file.
func SyncDir(dir string) error {
	return syncDir(dir)
}

// HasSyncFS reports whether SyncFS works here (Linux).
const HasSyncFS = hasSyncFS

// SyncFS flushes everything written to the file system that holds dir —
// data, new files and renames — to stable storage: syncfs(2), one call
// instead of an fsync per file for a writer that creates many files. It
// returns an error wrapping errors.ErrUnsupported where HasSyncFS is false.
func SyncFS(dir string) error {
	if err := syncFS(dir); err != nil {
		return &fs.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// FS is the file system that holds a directory, held open so that it can
// be flushed (Sync) any number of times with one descriptor. A write
// error of any file of the file system reported after OpenFS returned is
// reported by the next Sync: syncfs(2) reports the errors seen since the
// descriptor it is called on was opened (Linux 5.8 and later). SyncFS,
// which opens the directory for each call, misses an error that the
// kernel's own writeback met before that open.
type FS struct {
	d   *os.File // nil where HasSyncFS is false
	dir string
}

// OpenFS opens dir to flush its file system later. Where HasSyncFS is
// false it opens nothing, and Sync returns an error wrapping
// errors.ErrUnsupported.
func OpenFS(dir string) (*FS, error) {
	if !HasSyncFS {
		return &FS{dir: dir}, nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return &FS{d: d, dir: dir}, nil
}

// Sync flushes everything written to the file system — data, new files
// and renames — to stable storage, as SyncFS does, and reports every
// write error since OpenFS (once: a later Sync does not report it again).
func (f *FS) Sync() error {
	var err error = errors.ErrUnsupported
	if f.d != nil {
		err = syncFSFile(f.d)
	}
	if err != nil {
		return &fs.PathError{Op: "syncfs", Path: f.dir, Err: err}
	}
	return nil
}

// Close closes the directory.
func (f *FS) Close() error {
	if f.d == nil {
		return nil
	}
	return f.d.Close()
}

// Replace renames src to dst, replacing dst atomically when it exists: at
// every moment dst names either the old or the new file, never neither. On
// Windows, where a file open without FILE_SHARE_DELETE (by a virus scanner,
// an indexer, an editor) cannot be replaced, it retries for a few seconds on
// sharing and access violations before giving up with both files in place;
// ctx ends the waiting early.
func Replace(ctx context.Context, src, dst string) error {
	return replace(ctx, src, dst)
}

// Rename renames the file src to dst, replacing a file at dst, as
// os.Rename does, with one system call on Unix: os.Rename looks dst up
// first, to refuse a directory there, which rename(2) refuses itself for
// a file (EISDIR). The error is an *os.LinkError, as os.Rename's. Unlike
// Replace it does not wait for a file that Windows holds open.
func Rename(src, dst string) error {
	return rename(src, dst)
}

// SetTimes sets the access and modification times of the open file f,
// through its descriptor: the file may have been renamed since it was
// opened, and on Windows a second open (os.Chtimes) would conflict with the
// open handle.
func SetTimes(f *os.File, atime, mtime time.Time) error {
	if err := setTimes(f, atime, mtime); err != nil {
		return &fs.PathError{Op: "chtimes", Path: f.Name(), Err: err}
	}
	return nil
}

// Sparse marks f as a sparse file where the file system needs to be told
// (NTFS on Windows), so that growing it with Truncate allocates no blocks.
// Unix file systems that have holes make them without being asked, and
// Sparse does nothing there. Failure is not an error: the file is then
// simply not sparse.
func Sparse(f *os.File) {
	sparse(f)
}

// Preallocate reserves the blocks of the first size bytes of f, an empty
// file or one just truncated to size, so that writing it later only fills
// blocks already reserved: on Linux (fallocate), writing a new file into
// reserved blocks costs the kernel less than reserving them page by page,
// and the space is taken before the work starts. The blocks read as zeros
// until written. It reports whether it did; it does nothing, and reports
// false, on other systems, on file systems without fallocate, and when
// the file would take more than most of the free space (the file is then
// written sparse, and a full disk stops the writer with what it has kept).
func Preallocate(f *os.File, size int64) bool {
	return preallocate(f, size)
}

// OpenRegular opens path for reading only if it is a regular file (after
// symlinks), and fails at once otherwise with an error wrapping
// ErrNotRegular: it checks the type before opening, opens non-blocking on
// Unix (a FIFO swapped in after the check does not block the open either),
// and checks the opened file again. On Windows the file is opened as
// OpenFile does, so that it can still be replaced. A hung file system cannot hold it past
// ctx: the open then goes on in the background and its file is closed.
func OpenRegular(ctx context.Context, path string) (*os.File, os.FileInfo, error) {
	return openCtx(ctx, path, openRegular)
}

// ReadRegular reads the regular file at path whole, as os.ReadFile does,
// but opens it as OpenRegular does: anything else at path (a FIFO, whose
// open would wait for a writer, a device, a directory) is refused at once
// with an error wrapping ErrNotRegular. A missing file is an error wrapping
// fs.ErrNotExist, as with os.ReadFile.
func ReadRegular(ctx context.Context, path string) ([]byte, error) {
	f, fi, err := OpenRegular(ctx, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// As os.ReadFile: room for the length fstat gave and some growth.
	data := make([]byte, 0, fi.Size()+512)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// Open opens path for reading as os.Open does, whatever its type, but gives
// up when ctx ends: opening a FIFO waits for a writer, and a hung network
// file system for ever. The open then goes on in the background and its
// file is closed. Reads of a FIFO or a pipe can be ended with
// (*os.File).SetReadDeadline.
func Open(ctx context.Context, path string) (*os.File, error) {
	f, _, err := openCtx(ctx, path, func(path string) (*os.File, os.FileInfo, error) {
		f, err := os.Open(path)
		return f, nil, err
	})
	return f, err
}

// openCtx runs open in a goroutine and returns its result, or ctx's error
// when ctx ends first.
func openCtx(ctx context.Context, path string, open func(string) (*os.File, os.FileInfo, error)) (*os.File, os.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	type opened struct {
		f   *os.File
		fi  os.FileInfo
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, fi, err := open(path)
		ch <- opened{f, fi, err}
	}()
	select {
	case o := <-ch:
		return o.f, o.fi, o.err
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, nil, fmt.Errorf("open %s: %w", path, ctx.Err())
	}
}

func openRegular(path string) (*os.File, os.FileInfo, error) {
	before, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, notRegular(path, before.Mode())
	}
	return openAfterCheck(path)
}

// openAfterCheck opens path without blocking and checks what it opened:
// the path may have been replaced since it was looked at.
func openAfterCheck(path string) (*os.File, os.FileInfo, error) {
	f, err := openFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, notRegular(path, fi.Mode())
	}
	return f, fi, nil
}

// notRegular describes what path is instead of a regular file.
func notRegular(path string, m os.FileMode) error {
	kind := "special file"
	switch {
	case m.IsDir():
		kind = "directory"
	case m&os.ModeNamedPipe != 0:
		kind = "FIFO (named pipe)"
	case m&os.ModeSocket != 0:
		kind = "socket"
	case m&os.ModeCharDevice != 0:
		kind = "character device"
	case m&os.ModeDevice != 0:
		kind = "block device"
	}
	return fmt.Errorf("%s is a %s: %w", path, kind, ErrNotRegular)
}

// DropCache asks the kernel to drop the cached pages of the file at path
// that are not dirty (posix_fadvise POSIX_FADV_DONTNEED on Linux; nothing
// elsewhere). The file is not changed; reading it again reads the disk.
// A program that has read a file for the last time frees its pages at
// once, so that the pages it writes next reuse them instead of pages the
// system has not touched for a while (see docs/trees.md, "What runs
// when").
func DropCache(path string) error { return dropCache(path, 0, 0) }

// DropCacheRange is DropCache for the n bytes of the file at path from
// offset off: the pages wholly inside that range.
func DropCacheRange(path string, off, n int64) error {
	if n <= 0 {
		return nil
	}
	return dropCache(path, off, n)
}

// ReserveDescriptors grows the process's table of open files so that it
// holds at least n descriptors (at most the soft limit on open files),
// for a caller about to keep many files open at once. On Linux the table
// of a process with more than one thread (every Go program) grows by
// doubling, and each growth waits for an RCU grace period (about 10 ms on
// a virtual machine) during which every thread that needs a descriptor
// beyond the old size waits too: a mirror run that keeps a thousand
// directories open went through six growths in its first tenth of a
// second (docs/trees-measurements.md, "Where it stands: twenty-first
// session"). Growing the table once, early, takes one grace period
// instead, in the calling goroutine only: call it from a goroutine of its
// own. No descriptor stays open; the table never shrinks. Failure is not
// an error (the table then grows as it would have), and it does nothing on
// other systems.
func ReserveDescriptors(n int) {
	reserveDescriptors(n)
}
