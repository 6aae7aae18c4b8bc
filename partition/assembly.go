// Package partition assembles one file from partitions that several
// processes — on one machine or on several sharing a file system — write
// at once into one shared partial file, with positioned writes, and puts
// the file in place once every partition is in and the whole file is
// verified against its manifest.
//
// Everything lives in a directory beside the target, ".<name>.zsyncpipe-parts":
//
//	lock     flock(2)ed while the record is read or changed (briefly)
//	record   JSON: the manifest being assembled, which partitions are in,
//	         which can be copied from the target; replaced atomically
//	data     the shared partial file (the target's ".part"), renamed
//	         over the target when complete
//	N.lock   flock(2)ed while partition N is written
//
// The rules that keep versions apart: partition N's bytes are written only
// by the holder of N.lock, after it has checked under the record lock that
// the record assembles its version and N is not in yet; N is marked in
// only after its bytes were read back and matched the manifest, and only
// if the record still assembles that version. The one that puts the file
// in place holds every partition lock, then the record lock, and checks
// every partition again. Locks are always taken in the order partition
// locks (ascending), then the record lock: no deadlock.
package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

// Options configure an Assembly.
type Options struct {
	// NoFsync skips flushing partitions and the result to disk.
	NoFsync bool
	// Poll is how often a lock held by another process is tried again;
	// 0 means 10 ms.
	Poll time.Duration
}

// Assembly is the assembly of one target file from partitions. It holds
// no open files between calls; any number of Assemblies of one target,
// in one process or several, work together through the files beside it.
type Assembly struct {
	target, dir string
	opts        Options
}

// DirSuffix ends the name of the directory beside a target that holds its
// assembly: ".<name>" + DirSuffix.
const DirSuffix = ".zsyncpipe-parts"

// New returns the Assembly of target. It does nothing on disk.
func New(target string, opts Options) *Assembly {
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Millisecond
	}
	dir := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+DirSuffix)
	return &Assembly{target: target, dir: dir, opts: opts}
}

// Dir returns the directory that holds the assembly.
func (a *Assembly) Dir() string { return a.dir }

// DataPath returns the path of the shared partial file.
func (a *Assembly) DataPath() string { return filepath.Join(a.dir, "data") }

func (a *Assembly) recordPath() string { return filepath.Join(a.dir, "record") }

func (a *Assembly) partLock(n int) string { return filepath.Join(a.dir, strconv.Itoa(n)+".lock") }

// record is what the record file holds.
type record struct {
	Manifest Manifest `json:"manifest"`
	// Stamp is the version's publication time.
	Stamp time.Time `json:"stamp"`
	// Done[i] is set once partition i is in the data file, verified.
	Done []bool `json:"done"`
	// Local[i] is set when partition i is the same in the target as it
	// stands: it is copied from there, not fetched.
	Local []bool `json:"local,omitempty"`
	// Started[i] is set once partition i was claimed: its bytes in the
	// data file may be anything, not zeros.
	Started []bool `json:"started,omitempty"`
	// Placed is set once the data was put in place as the target, whose
	// size and mtime (ns) are then kept: while they hold, the manifest
	// describes the target.
	Placed      bool  `json:"placed,omitempty"`
	TargetSize  int64 `json:"targetSize,omitempty"`
	TargetMTime int64 `json:"targetMtime,omitempty"`
}

func (r *record) complete() bool { return !slices.Contains(r.Done, false) }

// describesTarget reports whether the record is of a placed version that
// is still the target.
func (r *record) describesTarget(target string) bool {
	if r == nil || !r.Placed {
		return false
	}
	fi, err := os.Stat(target)
	return err == nil && fi.Size() == r.TargetSize && fi.ModTime().UnixNano() == r.TargetMTime
}

// wait locks path (creating it), trying again every Poll until ctx ends.
func (a *Assembly) wait(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := osfile.OpenLocked(path, 0o644)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, osfile.ErrLocked) {
			return nil, fmt.Errorf("partition: %w", err)
		}
		t := time.NewTimer(a.opts.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// lockRecord takes the record lock.
func (a *Assembly) lockRecord(ctx context.Context) (*os.File, error) {
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	return a.wait(ctx, filepath.Join(a.dir, "lock"))
}

// load reads the record; nil when there is none or it does not parse.
func (a *Assembly) load() *record {
	b, err := osfile.ReadRegular(context.Background(), a.recordPath())
	if err != nil {
		return nil
	}
	var r record
	if json.Unmarshal(b, &r) != nil || len(r.Done) != len(r.Manifest.Parts) ||
		(r.Local != nil && len(r.Local) != len(r.Done)) || (r.Started != nil && len(r.Started) != len(r.Done)) {
		return nil
	}
	return &r
}

func (a *Assembly) save(r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if a.opts.NoFsync {
		tmp := a.recordPath() + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("partition: save record: %w", err)
		}
		return os.Rename(tmp, a.recordPath())
	}
	if err := atomicfile.WriteBytes(a.recordPath(), 0o644, b); err != nil {
		return fmt.Errorf("partition: save record: %w", err)
	}
	return nil
}

// Version is the assembly of one version of the target, named by its
// manifest.
type Version struct {
	a   *Assembly
	m   *Manifest
	key string
}

// Manifest returns the version's manifest.
func (v *Version) Manifest() *Manifest { return v.m }

// Begin makes the record assemble the version m describes, stamped (its
// publication time, which orders versions), unless it does already, and
// returns it. A new version keeps the partitions of an unfinished earlier
// one that are the same in m, and marks as local those that the target
// holds already (known from the record of the placed version, or else by
// hashing the target). It reports ErrDone when that version is in place
// already, and ErrSuperseded when the record holds a version stamped
// later (being assembled, or in place): an older version never replaces a
// newer one.
func (a *Assembly) Begin(ctx context.Context, m *Manifest, stamp time.Time) (*Version, error) {
	v := &Version{a: a, m: m, key: m.Key()}
	lk, err := a.lockRecord(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	old := a.load()
	if old != nil && old.Manifest.Key() == v.key {
		if !old.Placed {
			return v, nil
		}
		if old.describesTarget(a.target) {
			return v, fmt.Errorf("%s: %w", a.target, ErrDone)
		}
	}
	if old != nil && old.Stamp.After(stamp) && (!old.Placed || old.describesTarget(a.target)) {
		return nil, fmt.Errorf("%s: a version published at %v is newer: %w", a.target, old.Stamp, ErrSuperseded)
	}
	r := &record{Manifest: *m, Stamp: stamp, Done: make([]bool, len(m.Parts)), Local: make([]bool, len(m.Parts))}
	keep := old != nil && !old.Placed
	if keep {
		for i := range r.Done {
			r.Done[i] = old.Done[i] && old.Manifest.Same(m, i)
		}
	}
	if err := a.findLocal(ctx, r, old); err != nil {
		return nil, err
	}
	f, err := osfile.OpenFile(a.DataPath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	defer f.Close()
	r.Started = make([]bool, len(r.Done))
	if keep && slices.Contains(r.Done, true) {
		for i := range r.Started {
			r.Started[i] = true // what the earlier version left there
		}
	} else {
		if err := f.Truncate(0); err != nil {
			return nil, fmt.Errorf("partition: %w", err)
		}
		osfile.Sparse(f)
	}
	if err := f.Truncate(m.Length()); err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	return v, a.save(r)
}

// findLocal marks the partitions of r's manifest that the target holds
// at their place.
func (a *Assembly) findLocal(ctx context.Context, r *record, old *record) error {
	m := &r.Manifest
	if old.describesTarget(a.target) {
		for i := range r.Local {
			r.Local[i] = !r.Done[i] && old.Manifest.Same(m, i)
		}
		return nil
	}
	t, fi, err := osfile.OpenRegular(ctx, a.target)
	if err != nil {
		return nil // no target (or not a regular file), nothing local
	}
	defer t.Close()
	for i, p := range m.Parts {
		off := m.Offset(i)
		if r.Done[i] || off+p.Size > fi.Size() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		id, err := Sum(m.Method, t, off, p.Size)
		if err != nil {
			return fmt.Errorf("partition: read %s: %w", a.target, err)
		}
		r.Local[i] = id == p.Identity // exact identities only: sr3's would read the rest of the file
	}
	return nil
}

// current loads the record under its lock and checks that it assembles v.
func (v *Version) current() (*record, error) {
	r := v.a.load()
	switch {
	case r == nil || r.Manifest.Key() != v.key:
		return nil, fmt.Errorf("%s: %w", v.a.target, ErrSuperseded)
	case r.Placed:
		return r, fmt.Errorf("%s: %w", v.a.target, ErrDone)
	}
	return r, nil
}

// Claim is the right to write one partition: its lock is held.
type Claim struct {
	v    *Version
	n    int
	lock *os.File
	data *os.File
	// Local is set when the target holds the partition already.
	Local bool
	// Fresh is set when no one claimed the partition before: the data
	// file holds zeros there (nothing worth reusing).
	Fresh bool
}

// Claim waits for partition n's lock and returns the claim to write it. It
// reports ErrDone when the partition is in already, ErrSuperseded when
// the record has gone on to another version.
func (v *Version) Claim(ctx context.Context, n int) (*Claim, error) {
	if n < 0 || n >= len(v.m.Parts) {
		return nil, fmt.Errorf("partition %d of %d: %w", n, len(v.m.Parts), ErrManifest)
	}
	pl, err := v.a.wait(ctx, v.a.partLock(n))
	if err != nil {
		return nil, err
	}
	return v.claimLocked(ctx, n, pl)
}

// tryClaim is Claim without waiting: nil when another holds the lock.
func (v *Version) tryClaim(ctx context.Context, n int) (*Claim, error) {
	pl, err := osfile.OpenLocked(v.a.partLock(n), 0o644)
	if errors.Is(err, osfile.ErrLocked) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	return v.claimLocked(ctx, n, pl)
}

func (v *Version) claimLocked(ctx context.Context, n int, pl *os.File) (_ *Claim, err error) {
	defer func() {
		if err != nil {
			pl.Close()
		}
	}()
	lk, err := v.a.lockRecord(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	r, err := v.current()
	if err != nil {
		return nil, err
	}
	if r.Done[n] {
		return nil, fmt.Errorf("%s partition %d: %w", v.a.target, n, ErrDone)
	}
	data, err := osfile.OpenFile(v.a.DataPath(), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	c := &Claim{v: v, n: n, lock: pl, data: data, Local: r.Local != nil && r.Local[n], Fresh: r.Started == nil || !r.Started[n]}
	if c.Fresh {
		r.Started[n] = true
		if err := v.a.save(r); err != nil {
			data.Close()
			return nil, err
		}
	}
	return c, nil
}

// Offset returns the offset of the claimed partition in the file.
func (c *Claim) Offset() int64 { return c.v.m.Offset(c.n) }

// Size returns the length of the claimed partition.
func (c *Claim) Size() int64 { return c.v.m.Parts[c.n].Size }

// Writer returns the partition as a WriterAt: offset 0 is its first byte.
// Writes past its end are refused.
func (c *Claim) Writer() io.WriterAt { return limitedWriter{c.data, c.Offset(), c.Size()} }

// Reader returns what the shared file holds of the partition now (what
// an interrupted writer left there, say).
func (c *Claim) Reader() *io.SectionReader {
	return io.NewSectionReader(c.data, c.Offset(), c.Size())
}

// limitedWriter writes into [off, off+n) of w.
type limitedWriter struct {
	w      io.WriterAt
	off, n int64
}

func (l limitedWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > l.n {
		return 0, fmt.Errorf("partition: write of %d bytes at %d leaves the partition of %d bytes", len(p), off, l.n)
	}
	return l.w.WriteAt(p, l.off+off)
}

// CopyTarget copies the partition from the target, where it is at the
// same offset (Local is set).
func (c *Claim) CopyTarget() error {
	// The open does not block: a FIFO put at the target is refused.
	t, _, err := osfile.OpenRegular(context.Background(), c.v.a.target)
	if err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	defer t.Close()
	if _, err := io.Copy(io.NewOffsetWriter(c.data, c.Offset()), io.NewSectionReader(t, c.Offset(), c.Size())); err != nil {
		return fmt.Errorf("partition: copy from %s: %w", c.v.a.target, err)
	}
	return nil
}

// Commit checks the partition's bytes against the manifest, flushes them
// and marks the partition in, if the record still assembles its version.
// complete reports that every partition is in: the caller then releases
// the claim and calls Version.Place.
func (c *Claim) Commit(ctx context.Context) (complete bool, err error) {
	p := c.v.m.Parts[c.n]
	id, err := Sum(c.v.m.Method, c.data, c.Offset(), p.Size)
	if err != nil {
		return false, fmt.Errorf("partition: read back: %w", err)
	}
	if id != p.Identity && c.v.m.BufSize <= 0 {
		return false, fmt.Errorf("%s partition %d: %w", c.v.a.target, c.n, ErrMismatch)
	}
	// An identity as sr3 3.3.1 computes it covers bytes past the
	// partition: Place checks it once they are in.
	if !c.v.a.opts.NoFsync {
		if err := osfile.Sync(c.data); err != nil {
			return false, fmt.Errorf("partition: flush: %w", err)
		}
	}
	lk, err := c.v.a.lockRecord(ctx)
	if err != nil {
		return false, err
	}
	defer lk.Close()
	r, err := c.v.current()
	if err != nil {
		return false, err
	}
	r.Done[c.n] = true
	if err := c.v.a.save(r); err != nil {
		return false, err
	}
	return r.complete(), nil
}

// Release lets go of the claim.
func (c *Claim) Release() {
	c.data.Close()
	c.lock.Close()
}

// Local copies, from the target, the partitions marked local that are
// not in yet and that no one else is writing. They are not announced
// (they did not change): every subscriber of the version sweeps them, so
// that they are done even when the one that began the version died.
// complete reports that every partition is in.
func (v *Version) Local(ctx context.Context) (complete bool, err error) {
	lk, err := v.a.lockRecord(ctx)
	if err != nil {
		return false, err
	}
	r, err := v.current()
	lk.Close()
	if err != nil {
		return false, err
	}
	complete = r.complete()
	for i := range r.Done {
		if r.Done[i] || r.Local == nil || !r.Local[i] {
			continue
		}
		c, err := v.tryClaim(ctx, i)
		if errors.Is(err, ErrDone) || c == nil && err == nil {
			continue
		}
		if err != nil {
			return false, err
		}
		err = c.CopyTarget()
		if err == nil {
			complete, err = c.Commit(ctx)
		}
		c.Release()
		if errors.Is(err, ErrMismatch) {
			// The target changed since: someone must fetch it after all.
			err = v.notLocal(ctx, i)
		}
		if err != nil {
			return false, err
		}
	}
	return complete, nil
}

// notLocal records that partition n is not to be copied from the target.
func (v *Version) notLocal(ctx context.Context, n int) error {
	lk, err := v.a.lockRecord(ctx)
	if err != nil {
		return err
	}
	defer lk.Close()
	r, err := v.current()
	if err != nil {
		return err
	}
	if r.Local != nil {
		r.Local[n] = false
	}
	return v.a.save(r)
}

// Place puts the complete file in place, once: it takes every partition
// lock (so no writer is left in the data file), then the record lock,
// checks that the record still assembles this version with every
// partition in, verifies every partition of the data file against the
// manifest (the whole-file verification), and calls place with the data
// file's path, which must rename it over the target (after setting its
// mode and times). A partition that fails is marked out again and
// ErrMismatch returned. It reports ErrDone when another placed it first
// and ErrSuperseded when the record went on to another version.
func (v *Version) Place(ctx context.Context, place func(path string) error) error {
	a := v.a
	ns := make([]int, 0, len(v.m.Parts))
	for i := range v.m.Parts {
		ns = append(ns, i)
	}
	// Partition locks of other versions (more partitions) too.
	if names, err := filepath.Glob(filepath.Join(a.dir, "*.lock")); err == nil {
		for _, p := range names {
			if n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".lock")); err == nil && n >= len(v.m.Parts) {
				ns = append(ns, n)
			}
		}
	}
	slices.Sort(ns)
	for _, n := range ns {
		pl, err := a.wait(ctx, a.partLock(n))
		if err != nil {
			return err
		}
		defer pl.Close()
	}
	lk, err := a.lockRecord(ctx)
	if err != nil {
		return err
	}
	defer lk.Close()
	r, err := v.current()
	if err != nil {
		return err
	}
	if !r.complete() {
		return fmt.Errorf("%s: not every partition is in", a.target)
	}
	f, err := osfile.OpenFile(a.DataPath(), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(v.m.Length()); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	if bad, err := v.verify(ctx, f); err != nil {
		return err
	} else if len(bad) > 0 {
		for _, i := range bad {
			r.Done[i] = false
			if r.Local != nil {
				r.Local[i] = false
			}
		}
		if err := a.save(r); err != nil {
			return err
		}
		return fmt.Errorf("%s: partitions %v: %w", a.target, bad, ErrMismatch)
	}
	if !a.opts.NoFsync {
		if err := osfile.Sync(f); err != nil {
			return fmt.Errorf("partition: flush: %w", err)
		}
	}
	if err := place(a.DataPath()); err != nil {
		return err
	}
	fi, err := os.Stat(a.target)
	if err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	r.Placed, r.TargetSize, r.TargetMTime = true, fi.Size(), fi.ModTime().UnixNano()
	r.Local, r.Started = nil, nil
	return a.save(r)
}

// verify hashes every partition of f, on a few goroutines, and returns
// those that do not match the manifest.
func (v *Version) verify(ctx context.Context, f *os.File) ([]int, error) {
	var (
		mu   sync.Mutex
		bad  []int
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ok, err := v.m.Matches(i, f, v.m.Length())
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if !ok {
					bad = append(bad, i)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range v.m.Parts {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("partition: verify: %w", err)
	}
	slices.Sort(bad)
	return bad, nil
}

// Remove removes the assembly's directory, as when the target is removed.
func (a *Assembly) Remove() error {
	err := os.RemoveAll(a.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
