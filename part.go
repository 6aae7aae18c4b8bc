package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/internal/writeback"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// partFile is the partial result of a sync, OUT.part, together with its
// resume state, OUT.part.state: what an interrupted sync leaves behind and
// the next one goes on from. It owns the file, the Patcher that writes
// into it, and the decisions about what to keep when a sync fails.
type partFile struct {
	out, path string // OUT and OUT.part
	ctl       *control.File
	id        string // controlID(ctl)
	f         *os.File
	pt        *stages.Patcher
	logf      func(format string, args ...any)
	perm      os.FileMode // of the result

	// earlier is the state of an earlier run, or nil.
	earlier *resumeState
	// setAside is an earlier partial result without a usable state, kept
	// as a seed (OUT.part.seed) until this one holds everything it held.
	setAside string
	// seeds identifies the seeds of this run; scanned is set once every
	// block found in them is in the file. The state then lists them as
	// scanned, so that the next run skips them.
	seeds   []seedID
	scanned bool
	// flushed is set once the complete file has been flushed to disk, so
	// that commit need not flush it again.
	flushed bool
	// wb, when the result is to be flushed, gets the file onto the disk
	// while it is written; flush and close stop it.
	wb *writeback.Every
	// noState is set while there is no state file: none was there when
	// the file was opened and none has been saved since. Removing it is
	// then skipped (two system calls per rebuilt file of a mirror).
	noState bool
	// noDirSync skips flushing the directory after the rename into OUT:
	// set for Mirror, which renames OUT again into its tree without such a
	// flush. The data is flushed before either rename, so a crash that
	// loses this one leaves the complete OUT.part, which the next run sets
	// aside and scans as a seed. The flush took about 0.4 s of waiting,
	// summed over the rebuilds, on the divergent Go pair.
	noDirSync bool
	// attrs, when set, are the mode and mtime commit gives the result
	// (see SyncOptions.attrs).
	attrs *resultAttrs
	// size is the length of the file when it was locked: a new, empty
	// one need not be emptied.
	size int64
}

// openPart opens OUT.part for the target of ctl, locked for the whole sync
// (see osfile.Lock: the kernel drops the lock when the process dies):
// resuming an earlier one when its state belongs to ctl, setting it aside
// as a seed otherwise. perm is the mode of the result (that of the output it
// replaces); the partial file itself is always writable by its owner, so
// that a later run can reopen it, and gets perm when it is committed.
// Nothing is removed,
// renamed or truncated before the lock is held, so a second sync of the
// same output fails with ErrBusy and leaves the first one's files alone.
func openPart(out string, ctl *control.File, perm os.FileMode, logf func(string, ...any)) (_ *partFile, err error) {
	return openPartFresh(out, ctl, perm, logf, false)
}

// openPartFresh is openPart; fresh says that the caller listed the
// directory and found neither OUT.part nor its state nor a set-aside seed
// (Mirror's scan, for the files rebuilt for the first time). OUT.part is
// then created with O_EXCL: when that succeeds the file is new and empty,
// so there is no state to read for it, nothing to set aside, and no seed
// to look for (three failed lookups and an fstat per file spared). When
// it is there after all (made since the listing), it is opened as
// openPart opens it.
func openPartFresh(out string, ctl *control.File, perm os.FileMode, logf func(string, ...any), fresh bool) (_ *partFile, err error) {
	p := &partFile{out: out, path: out + ".part", ctl: ctl, id: controlID(ctl), logf: logf, perm: perm}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	created := false
	if fresh {
		if created, err = p.create(perm | 0o200); err != nil {
			return nil, err
		}
	}
	if !created {
		if err := p.lock(perm | 0o200); err != nil {
			return nil, err
		}
	}
	if p.earlier == nil {
		// A state that is there belongs to something else: the first save
		// is written over it (see writeState). A new file is empty
		// already.
		if p.size != 0 {
			if err := p.f.Truncate(0); err != nil {
				return nil, fmt.Errorf("sync: empty %s: %w", p.path, err)
			}
		}
		osfile.Sparse(p.f)
	}
	if err := p.f.Truncate(ctl.Length); err != nil {
		return nil, fmt.Errorf("sync: size %s: %w", p.path, err)
	}
	p.pt = stages.NewPatcher(p.f, &ctl.Header)
	p.pt.Sized() // no write goes past the target's length
	if p.earlier == nil {
		// A new file, truncated to length (and its blocks reserved where
		// the system allows: writes into reserved blocks cost the kernel
		// less): it reads as zeros, so blocks of zeros need no writing.
		osfile.Preallocate(p.f, ctl.Length)
		p.pt.AssumeZeroed()
	}
	return p, nil
}

// lock opens and locks OUT.part and decides what to do with what it holds:
// resume it when its state belongs to the control file, or else set it
// aside as a seed and lock a new one. The old one stays locked until the
// new one is, so no other sync can take either in between.
func (p *partFile) lock(perm os.FileMode) error {
	busy := func(err error) error {
		if errors.Is(err, osfile.ErrLocked) {
			return fmt.Errorf("sync: another sync is writing %s (it holds %s); wait for it to end: %w", p.out, p.path, ErrBusy)
		}
		return fmt.Errorf("sync: open %s: %w", p.path, err)
	}
	f, err := osfile.OpenLocked(p.path, perm)
	if err != nil {
		return busy(err)
	}
	p.f = f
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO or a device (opening one read-write does not block on
		// Linux): it is not ours to remove, and it cannot hold the result.
		return fmt.Errorf("sync: %s is not a regular file (%v); remove it or sync to another output: %w", p.path, fi.Mode().Type(), ErrNotRegular)
	}
	p.size = fi.Size()
	st, why := loadState(p.path, p.ctl, p.id)
	p.noState = st == nil && why == ""
	switch {
	case st != nil:
		p.earlier = st
	case fi.Size() > 0:
		if why != "" {
			p.logf("ignoring %s: %s", statePath(p.path), why)
		}
		p.setAside = p.path + ".seed"
		if err := osfile.Replace(context.Background(), p.path, p.setAside); err != nil {
			return fmt.Errorf("sync: set aside %s: %w", p.path, err)
		}
		nf, err := osfile.OpenFile(p.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if err == nil {
			if err = osfile.Lock(nf); err != nil {
				nf.Close()
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				err = osfile.ErrLocked // another sync created it first
			}
			return busy(err)
		}
		f.Close()
		p.f = nf
		p.size = 0
	default:
		if _, err := os.Stat(p.path + ".seed"); err == nil {
			p.setAside = p.path + ".seed"
		}
	}
	return nil
}

// create creates OUT.part, which must not exist, and locks it; it reports
// false, and no error, when the file exists. A file it created is new and
// empty, and its state is not read: none can describe it. (Another sync
// could only replace it between the create and the lock by locking it
// first; commit checks that the path still names the file before it
// renames it.)
func (p *partFile) create(perm os.FileMode) (bool, error) {
	f, err := osfile.OpenFile(p.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sync: open %s: %w", p.path, err)
	}
	if err := osfile.Lock(f); err != nil {
		f.Close()
		if errors.Is(err, osfile.ErrLocked) {
			return false, fmt.Errorf("sync: another sync is writing %s (it holds %s); wait for it to end: %w", p.out, p.path, ErrBusy)
		}
		return false, fmt.Errorf("sync: open %s: %w", p.path, err)
	}
	p.f, p.size, p.noState = f, 0, true
	return true, nil
}

// skipSeed reports whether the earlier run scanned the seed at path
// completely, so that this one need not.
func (p *partFile) skipSeed(path string, fi os.FileInfo) bool {
	return p.earlier != nil && p.earlier.scanned(path, fi)
}

// resume marks the blocks verified by the earlier run as done, and every
// block done (by the earlier run, or written since the file was opened:
// by the scan of Mirror, which hands the file over to Sync) as found in
// seed number self (the partial file, at their own offsets), so that the
// scan does not look for them again. It returns how many there are.
func (p *partFile) resume(m *stages.Matches, self int) int64 {
	bs := int64(p.ctl.Blocksize)
	var n int64
	for i := range p.ctl.Blocks() {
		if p.earlier != nil && p.earlier.done(i) {
			p.pt.MarkDone(i)
		}
		if p.pt.Done(i) {
			m.Set(i, self, i*bs)
			n++
		}
	}
	return n
}

// save records the verified blocks of the file in its state (not flushed:
// see saveState).
func (p *partFile) save() error {
	var scanned []seedID
	if p.earlier != nil {
		scanned = p.earlier.Scanned
	}
	if p.scanned {
		scanned = append(scanned[:len(scanned):len(scanned)], p.seeds...)
	}
	p.noState = false
	return saveState(p.path, p.id, p.pt, p.ctl.Blocks(), scanned)
}

// removeState removes the state file, if there is one.
func (p *partFile) removeState() {
	if !p.noState {
		os.Remove(statePath(p.path))
		p.noState = true
	}
}

// reserve writes a first state, unless there is one, while there is room
// on the disk: the later states are written over it in place (see
// writeState). It is not flushed: a state torn by a crash does not match
// its checksum, and the next run then uses the file only as a seed.
func (p *partFile) reserve() error {
	if p.earlier != nil {
		return nil
	}
	p.noState = false
	return saveState(p.path, p.id, p.pt, p.ctl.Blocks(), nil)
}

// keep decides, after a failed run, which partial result to keep for the
// next run: the new one, with its state, when it holds every block found
// locally (the set-aside seed is then no longer needed); otherwise the
// earlier one. It returns what went wrong while keeping.
func (p *partFile) keep() error {
	_ = p.stopWriteback() // the file is kept, not committed: its flushes no longer matter
	if p.setAside == "" || p.scanned {
		if p.setAside != "" {
			os.Remove(p.setAside)
		}
		if err := p.save(); err != nil {
			return fmt.Errorf("keep %s for the next run: %w", p.path, err)
		}
		return nil
	}
	// Put the earlier one back in one step, still holding the lock of the
	// new one, so that no other sync sees the path between the two.
	p.removeState()
	err := osfile.Replace(context.Background(), p.setAside, p.path)
	p.f.Close()
	p.f = nil
	if err != nil {
		// Windows may refuse to replace a file open here; closed, it
		// cannot refuse.
		err = osfile.Replace(context.Background(), p.setAside, p.path)
	}
	if err != nil {
		return fmt.Errorf("keep the earlier %s for the next run: %w", p.path, err)
	}
	return nil
}

// commit checks the result of the whole-file verification and, when it
// passed, flushes the file (unless noFsync), gives it the control file's
// mtime and renames it over OUT.
func (p *partFile) commit(verified error, noFsync bool) error {
	// Every block is in the new partial result: the old one has served.
	if p.setAside != "" {
		os.Remove(p.setAside)
	}
	switch {
	case errors.Is(verified, stages.ErrNoFileHash):
		p.logf("warning: %v; only the block checksums vouch for %s", verified, p.out)
	case errors.Is(verified, ErrVerify):
		// Every block passed its own check, yet the whole does not match:
		// start afresh next time, using this result only as a seed.
		p.removeState()
		return fmt.Errorf("sync %s: %w", p.out, verified)
	case verified != nil:
		if err := p.save(); err != nil {
			p.logf("%v", err)
		}
		return fmt.Errorf("sync %s: %w", p.out, verified)
	}
	f := p.f
	if !noFsync && !p.flushed {
		if err := p.flush(); err != nil {
			return err
		}
	} else {
		_ = p.stopWriteback() // hints only: no flush failed
	}
	mt := p.ctl.MTime
	switch {
	case p.attrs != nil:
		if err := f.Chmod(p.attrs.mode); err != nil {
			return fmt.Errorf("sync: set mode of %s: %w", p.path, err)
		}
		if !p.attrs.mtime.IsZero() {
			mt = p.attrs.mtime
		}
	case p.perm&0o200 == 0:
		// The output was not writable by its owner: neither is the
		// result (the write bit was only lent to the partial file).
		fi, err := f.Stat()
		if err == nil {
			err = f.Chmod(fi.Mode().Perm() &^ 0o200)
		}
		if err != nil {
			return fmt.Errorf("sync: set mode of %s: %w", p.path, err)
		}
	}
	if !mt.IsZero() {
		if err := osfile.SetTimes(f, mt, mt); err != nil {
			return fmt.Errorf("sync: set mtime of %s: %w", p.path, err)
		}
	}
	if p.attrs != nil {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		p.attrs.info = fi
	}
	// Rename the very file that was verified: it is still open and
	// locked, so no other sync can have replaced it, and the path is
	// checked to name it still.
	if ok, err := osfile.Names(p.path, f); err != nil || !ok {
		return fmt.Errorf("sync: %s is no longer the file that was verified (%v); %s is unchanged: %w", p.path, err, p.out, ErrBusy)
	}
	// The state goes first: once renamed, the file no longer holds the
	// lock of the .part path, and a next sync must not take a state that
	// describes it for a new, empty .part.
	p.removeState()
	if err := osfile.Replace(context.Background(), p.path, p.out); err != nil {
		return fmt.Errorf("sync: rename %s to %s: %w", p.path, p.out, err)
	}
	p.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("sync: close %s: %w", p.out, err)
	}
	if !noFsync && !p.noDirSync {
		if err := osfile.SyncDir(filepath.Dir(p.out)); err != nil {
			return fmt.Errorf("sync: flush the directory of %s: %w", p.out, err)
		}
	}
	return nil
}

// flush stops the background flushes of the file and flushes it: once it
// returns nil, every byte written is on the disk. A background flush that
// failed fails it too: the final flush would not report that error again.
func (p *partFile) flush() error {
	if err := p.stopWriteback(); err != nil {
		return fmt.Errorf("sync: flush %s: %w", p.path, err)
	}
	if err := osfile.Sync(p.f); err != nil {
		return fmt.Errorf("sync: flush %s: %w", p.path, err)
	}
	return nil
}

// stopWriteback stops the early writeback, if any, and returns the error of
// a background flush.
func (p *partFile) stopWriteback() error {
	if p.wb == nil {
		return nil
	}
	err := p.wb.Close()
	p.wb = nil
	return err
}

// close closes the file if it is still open.
func (p *partFile) close() {
	_ = p.stopWriteback()
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}
