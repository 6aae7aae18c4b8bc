package zsyncpipe

import (
	"errors"
	"fmt"
	"os"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
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
}

// openPart opens OUT.part for the target of ctl: resuming an earlier one
// when its state belongs to ctl, setting it aside as a seed otherwise.
// perm is the mode of a new file.
func openPart(out string, ctl *control.File, perm os.FileMode, logf func(string, ...any)) (*partFile, error) {
	p := &partFile{out: out, path: out + ".part", ctl: ctl, id: controlID(ctl), logf: logf}
	flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if _, err := os.Stat(p.path); err == nil {
		st, why := loadState(p.path, ctl, p.id)
		if st != nil {
			p.earlier = st
			flags &^= os.O_TRUNC
		} else {
			if why != "" {
				logf("ignoring %s: %s", statePath(p.path), why)
			}
			p.setAside = p.path + ".seed"
			if err := os.Rename(p.path, p.setAside); err != nil {
				return nil, fmt.Errorf("sync: set aside %s: %w", p.path, err)
			}
		}
	} else if _, err := os.Stat(p.path + ".seed"); err == nil {
		p.setAside = p.path + ".seed"
	}
	if p.earlier == nil {
		os.Remove(statePath(p.path))
	}
	atomicfile.RemoveStale(statePath(p.path)) // left by a sync killed while saving
	f, err := os.OpenFile(p.path, flags, perm)
	if err != nil {
		return nil, fmt.Errorf("sync: create %s: %w", p.path, err)
	}
	p.f = f
	if err := f.Truncate(ctl.Length); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync: size %s: %w", p.path, err)
	}
	p.pt = stages.NewPatcher(f, &ctl.Header)
	if p.earlier == nil {
		// A new file, truncated to length: it reads as zeros, so blocks of
		// zeros need no writing (they stay holes).
		p.pt.AssumeZeroed()
	}
	return p, nil
}

// skipSeed reports whether the earlier run scanned the seed at path
// completely, so that this one need not.
func (p *partFile) skipSeed(path string, fi os.FileInfo) bool {
	return p.earlier != nil && p.earlier.scanned(path, fi)
}

// resume marks the blocks verified by the earlier run as done, and as found
// in seed number self (the partial file, at their own offsets), so that
// the scan does not look for them again. It returns how many there are.
func (p *partFile) resume(m *stages.Matches, self int) int64 {
	if p.earlier == nil {
		return 0
	}
	bs := int64(p.ctl.Blocksize)
	var n int64
	for i := range p.ctl.Blocks() {
		if p.earlier.done(i) {
			m.Set(i, self, i*bs)
			p.pt.MarkDone(i)
			n++
		}
	}
	return n
}

// save records the verified blocks of the file in its state.
func (p *partFile) save() error {
	var scanned []seedID
	if p.earlier != nil {
		scanned = p.earlier.Scanned
	}
	if p.scanned {
		scanned = append(scanned[:len(scanned):len(scanned)], p.seeds...)
	}
	return saveState(p.path, p.id, p.pt, p.ctl.Blocks(), scanned)
}

// reserve writes a first state, unless there is one, while there is room
// on the disk: when the disk fills up, the later states are written over it
// in place (see saveState). It is not flushed: a state torn by a crash
// does not parse, and the next run then uses the file only as a seed.
func (p *partFile) reserve() error {
	if p.earlier != nil {
		return nil
	}
	data, err := stateBytes(p.id, p.pt, p.ctl.Blocks(), nil)
	if err != nil {
		return err
	}
	if err := os.WriteFile(statePath(p.path), data, 0o644); err != nil {
		os.Remove(statePath(p.path))
		return fmt.Errorf("save resume state: %w", err)
	}
	return nil
}

// keep decides, after a failed run, which partial result to keep for the
// next run: the new one, with its state, when it holds every block found
// locally (the set-aside seed is then no longer needed); otherwise the
// earlier one. It returns what went wrong while keeping.
func (p *partFile) keep() error {
	if p.setAside == "" || p.scanned {
		if p.setAside != "" {
			os.Remove(p.setAside)
		}
		if err := p.save(); err != nil {
			return fmt.Errorf("keep %s for the next run: %w", p.path, err)
		}
		return nil
	}
	p.f.Close()
	p.f = nil
	os.Remove(p.path)
	os.Remove(statePath(p.path))
	if err := os.Rename(p.setAside, p.path); err != nil {
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
		os.Remove(statePath(p.path))
		return fmt.Errorf("sync %s: %w", p.out, verified)
	case verified != nil:
		if err := p.save(); err != nil {
			p.logf("%v", err)
		}
		return fmt.Errorf("sync %s: %w", p.out, verified)
	}
	f := p.f
	if !noFsync && !p.flushed {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync: flush %s: %w", p.path, err)
		}
	}
	p.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("sync: close %s: %w", p.path, err)
	}
	if mt := p.ctl.MTime; !mt.IsZero() {
		if err := os.Chtimes(p.path, mt, mt); err != nil {
			return fmt.Errorf("sync: set mtime of %s: %w", p.path, err)
		}
	}
	if err := os.Rename(p.path, p.out); err != nil {
		return fmt.Errorf("sync: rename %s to %s: %w", p.path, p.out, err)
	}
	os.Remove(statePath(p.path))
	return nil
}

// close closes the file if it is still open.
func (p *partFile) close() {
	if p.f != nil {
		p.f.Close()
	}
}
