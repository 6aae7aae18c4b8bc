package zsyncpipe

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// walkTree calls fn with the slash-separated path relative to root and
// the lstat of everything below root, without following symlinks, except
// the paths skip names (and what is below them). A root that does not
// exist is empty; a directory that cannot be read is an error.
//
// Each entry is looked up from its directory's descriptor (fstatat), not
// from the root by its whole path, and two directories are read at once:
// fn is called from several goroutines. This walk is on the mirror's
// critical path (the hashing of local files follows it).
//
// keep, if not nil, may take the open directory rel (its *os.File and
// descriptor) before its entries are listed, and close it later itself.
func walkTree(root string, skip func(rel string) bool, fn func(rel string, fi fs.FileInfo), keep func(rel string, d *os.File, fd int) bool) error {
	d, err := os.Open(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	w := &treeWalker{skip: skip, fn: fn, keep: keep, sem: make(chan struct{}, 1)}
	w.wg.Add(1)
	w.dir(d, "")
	w.wg.Wait()
	return w.err
}

type treeWalker struct {
	skip  func(string) bool
	fn    func(string, fs.FileInfo)
	keep  func(string, *os.File, int) bool
	sem   chan struct{} // a token per goroutine besides the caller's
	wg    sync.WaitGroup
	errMu sync.Mutex
	err   error
}

func (w *treeWalker) fail(err error) {
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
}

// dir lists the directory d, at rel, and what is below it, and closes d
// unless keep took it.
func (w *treeWalker) dir(d *os.File, rel string) {
	defer w.wg.Done()
	kept := false
	defer func() {
		if !kept {
			d.Close()
		}
	}()
	names, err := d.Readdirnames(-1)
	if err != nil {
		w.fail(err)
		return
	}
	sc, err := d.SyscallConn()
	if err != nil {
		w.fail(err)
		return
	}
	sc.Control(func(fd uintptr) {
		kept = w.keep != nil && w.keep(rel, d, int(fd))
		for _, name := range names {
			r := name
			if rel != "" {
				r = rel + "/" + name
			}
			if w.skip(r) {
				continue
			}
			var st unix.Stat_t
			if err := ignoringEINTR(func() error {
				return unix.Fstatat(int(fd), name, &st, unix.AT_SYMLINK_NOFOLLOW)
			}); err != nil {
				continue // gone meanwhile
			}
			fi := &statInfo{name: name, sys: syscall.Stat_t{
				Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid,
				Rdev: st.Rdev, Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
				Atim: syscall.Timespec(st.Atim), Mtim: syscall.Timespec(st.Mtim), Ctim: syscall.Timespec(st.Ctim),
			}}
			fi.fill()
			w.fn(r, fi)
			if !fi.IsDir() {
				continue
			}
			var sfd int
			err := ignoringEINTR(func() (err error) {
				sfd, err = unix.Openat(int(fd), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				return err
			})
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				continue // gone or replaced meanwhile
			}
			if err != nil {
				w.fail(&os.PathError{Op: "open", Path: r, Err: err})
				continue
			}
			sub := os.NewFile(uintptr(sfd), r)
			w.wg.Add(1)
			select {
			case w.sem <- struct{}{}:
				go func() {
					defer func() { <-w.sem }()
					w.dir(sub, r)
				}()
			default:
				w.dir(sub, r)
			}
		}
	})
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
