//go:build linux

package zsyncpipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// fileID is what a flush watcher knows of a file: its inode and content.
type fileID struct {
	ino uint64
	sum [32]byte
}

// flushWatch checks, through MirrorOptions.hook, the durability contract
// of docs/trees.md ("Guarantees"): a file is renamed into place only with
// the content the index lists (verified) and only once a flush that
// started after that content was complete has ended (durable); the run's
// last flush comes after its last rename. A flush covers the files as they
// were when it started (snapshot at "flush"), once it has ended
// ("flushed").
//
// Every content a finished flush covered is kept, not only the last
// flush's to end: flushes overlap, and one that started earlier (and saw
// a file half written) may end after one that started later (and saw it
// complete). Keeping only the last to end made a false alarm in CI (a
// syncfs of 147 ms under load beside a flush of single files).
type flushWatch struct {
	t        errorfer
	dst, pub string
	mu       sync.Mutex
	pending  []flushSnap                // flushes under way, oldest first
	flushed  map[string]map[fileID]bool // by path: contents finished flushes covered
	events   []string
	renames  int
	syncfs   int
	perFile  int
	inParts  int // renames from the parts directory (rebuilt, copied)
	finalAt  int // index in events of the last "final", or -1
	renameAt int // index in events of the last "rename"
}

// errorfer is the part of testing.TB a flushWatch reports through.
type errorfer interface {
	Errorf(format string, args ...any)
}

type flushSnap struct {
	key   string // the paths flushed, "" for the whole file system
	files map[string]fileID
}

func newFlushWatch(t errorfer, pub, dst string) *flushWatch {
	return &flushWatch{t: t, pub: pub, dst: dst, flushed: map[string]map[fileID]bool{}, finalAt: -1, renameAt: -1}
}

// id reads the file at p; ok is false when it is not a regular file.
func (w *flushWatch) id(p string) (id fileID, ok bool) {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return id, false
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return id, false
	}
	return fileID{ino: fi.Sys().(*syscall.Stat_t).Ino, sum: sha256.Sum256(data)}, true
}

func (w *flushWatch) hook(ev string, paths []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, ev)
	switch ev {
	case "flush":
		s := flushSnap{key: strings.Join(paths, "\x00"), files: map[string]fileID{}}
		if paths == nil { // syncfs: every file of the tree, its state included
			filepath.WalkDir(w.dst, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if id, ok := w.id(p); ok {
						s.files[p] = id
					}
				}
				return nil
			})
		}
		for _, p := range paths {
			if id, ok := w.id(p); ok {
				s.files[p] = id
			}
		}
		w.pending = append(w.pending, s)
	case "flushed":
		key := strings.Join(paths, "\x00")
		for i, s := range w.pending {
			if s.key == key { // the oldest: a later flush of the same files covers what it covered
				for p, id := range s.files {
					if w.flushed[p] == nil {
						w.flushed[p] = map[fileID]bool{}
					}
					w.flushed[p][id] = true
				}
				w.pending = append(w.pending[:i], w.pending[i+1:]...)
				break
			}
		}
		if paths == nil {
			w.syncfs++
		} else {
			w.perFile++
		}
	case "rename":
		tmp, dst := paths[0], paths[1]
		w.renames++
		w.renameAt = len(w.events) - 1
		if strings.HasPrefix(tmp, filepath.Join(w.dst, MirrorStateDir)) {
			w.inParts++
		}
		rel, _ := filepath.Rel(w.dst, dst)
		want, err := os.ReadFile(filepath.Join(w.pub, rel))
		if err != nil {
			w.t.Errorf("rename of %s: not published: %v", rel, err)
			return
		}
		id, ok := w.id(tmp)
		if !ok || id.sum != sha256.Sum256(want) {
			w.t.Errorf("%s renamed into place from %s without the published content (not verified)", rel, tmp)
			return
		}
		if !w.flushed[tmp][id] {
			w.t.Errorf("%s renamed into place from %s before a flush covered its content", rel, tmp)
		}
	case "final":
		w.finalAt = len(w.events) - 1
	}
}

// Every file a mirror places is verified and flushed before its rename,
// whether it was rebuilt through the sync pipeline, fetched whole, copied
// from a local file or from another placed file, or came with the index;
// and the run ends with a flush of the whole tree after its last rename
// and removal. Both ways of flushing are covered: one file at a time
// (batches of fewer than syncFSMin files) and syncfs, at the end and by
// the flusher beside the rebuilds.
func TestMirrorFlushesBeforeRename(t *testing.T) {
	for _, extra := range []int{0, 24} {
		t.Run(fmt.Sprintf("rebuilt+%d", extra), func(t *testing.T) {
			tmp := t.TempDir()
			pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
			oldFiles, newFiles := trees()
			for i := range extra { // changed in one byte: rebuilt from the old version
				data := treeData(uint64(500+i), 48<<10)
				oldFiles[fmt.Sprintf("big/f%d", i)] = data
				changed := bytes.Clone(data)
				changed[1000] ^= 0xff
				newFiles[fmt.Sprintf("big/f%d", i)] = changed
			}
			makeTree(t, dst, oldFiles, nil)
			makeTree(t, pub, newFiles, nil)
			publishTree(t, pub, 1)
			url, _ := serveTree(t, pub)
			w := newFlushWatch(t, pub, dst)
			o := mirrorOpts(url, dst)
			o.NoFsync, o.Delete, o.hook = false, true, w.hook
			if extra > 0 {
				o.batch = syncFSMin // batches flushed beside the rebuilds (the flusher), by syncfs
			}
			sum, err := Mirror(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, pub, dst, false)
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Logf("%d renames (%d from the parts directory), %d syncfs, %d flushes file by file; %+v", w.renames, w.inParts, w.syncfs, w.perFile, sum)
			if w.renames != sum.New+sum.Updated || w.inParts < extra {
				t.Errorf("%d renames watched (%d from the parts directory), want %d (at least %d)", w.renames, w.inParts, sum.New+sum.Updated, extra)
			}
			if w.finalAt < 0 || w.finalAt < w.renameAt {
				t.Errorf("the last flush of the tree (event %d) is not after the last rename (event %d): %v", w.finalAt, w.renameAt, w.events)
			}
			batches := 0
			for _, ph := range sum.Phases {
				if ph.Name == "flush batch" {
					batches++
				}
			}
			if extra > 0 && batches == 0 {
				t.Error("no batch flushed beside the rebuilds")
			}
			if extra > 0 && w.syncfs == 0 || extra == 0 && w.perFile == 0 {
				t.Errorf("%d syncfs, %d flushes file by file: the other way of flushing is not covered", w.syncfs, w.perFile)
			}
		})
	}
}

// newFlushRun returns a mirror run over an empty directory, as far as
// placing files needs one, whose flushes and renames go to hook.
func newFlushRun(t *testing.T, hook func(string, []string)) *mirrorRun {
	dir := t.TempDir()
	m := &mirrorRun{opts: MirrorOptions{hook: hook}, dir: dir, meta: filepath.Join(dir, MirrorStateDir),
		sum: &MirrorSummary{}, st: &mirrorState{Files: map[string]fileState{}}, local: map[string]os.FileInfo{},
		start: time.Now(), saved: time.Now()}
	m.parts = filepath.Join(m.meta, "parts")
	if err := os.MkdirAll(m.parts, 0o755); err != nil {
		t.Fatal(err)
	}
	return m
}

// verifiedJob writes the file of a job as a fetch would, verified, and
// returns the job.
func verifiedJob(t *testing.T, m *mirrorRun, name string, mode fs.FileMode) *fileJob {
	data := []byte("content of " + name)
	sum := sha256.Sum256(data)
	j := &fileJob{e: &treeindex.Entry{Path: name, Type: treeindex.File, Size: int64(len(data)), Mode: mode,
		MTime: time.Unix(1_700_000_000, 123456789), SHA256: sum[:]}, hex: fmt.Sprintf("%x", sum), how: "copy"}
	if err := m.writeVerified(j, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestMirrorFlusherCoversHeldFiles: the flusher does not flush the files
// held while the scan runs as they complete (fewer than scanFlushBytes: not
// a syncfs per flushFiles, as outside the hold), but starts a syncfs as soon
// as the hold ends, and renames them once it is over, without another
// flush; a file completed after that syncfs started waits for a flush of
// its own. A failed syncfs leaves every file unplaced, even those a later
// flush would cover.
func TestMirrorFlusherCoversHeldFiles(t *testing.T) {
	var mu sync.Mutex
	var events []string
	hook := func(ev string, paths []string) {
		mu.Lock()
		defer mu.Unlock()
		if ev == "flush" && paths != nil {
			ev = "flush files"
		}
		events = append(events, ev)
	}
	seen := func(ev string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range events {
			if e == ev {
				n++
			}
		}
		return n
	}
	m := newFlushRun(t, hook)
	m.hold(true)
	stop := m.flusher()
	var held []*fileJob
	for i := range 2 * flushFiles {
		j := verifiedJob(t, m, fmt.Sprintf("f%d", i), 0o644)
		m.verified(j)
		held = append(held, j)
	}
	time.Sleep(100 * time.Millisecond)
	if n := seen("flush"); n != 0 {
		t.Errorf("%d syncfs while %d small files were held, want none before the hold ends", n, len(held))
	}
	deadline := time.Now().Add(10 * time.Second)
	m.hold(false)
	for seen("rename") < len(held) { // the flusher's goroutine renames them
		if time.Now().After(deadline) {
			t.Fatalf("the held files were not flushed and renamed after the hold ended: %v", events)
		}
		time.Sleep(time.Millisecond)
	}
	late := verifiedJob(t, m, "late", 0o644)
	m.verified(late)
	stop()
	m.renaming.Wait() // the flusher's renames run beside its next syncfs
	for _, j := range held {
		if !j.placed {
			t.Errorf("%s: held, not renamed after the syncfs that followed the hold", j.e.Path)
		}
	}
	if late.placed {
		t.Error("a file completed after the last syncfs started was renamed without a flush")
	}
	if n, r := seen("flushed"), seen("rename"); n != 1 || r != len(held) {
		t.Errorf("%d syncfs and %d renames at the end of the hold, want 1 and %d: %v", n, r, len(held), events)
	}
	m.flushQueue()
	if !late.placed || seen("flush files") != 1 {
		t.Errorf("the last file: placed %v, after %d flushes of its own (want 1): %v", late.placed, seen("flush files"), events)
	}
	if len(m.errs) > 0 {
		t.Fatal(m.errs)
	}

	t.Run("failed", func(t *testing.T) {
		m := newFlushRun(t, nil)
		var jobs []*fileJob
		for i := range flushFiles + 1 {
			jobs = append(jobs, verifiedJob(t, m, fmt.Sprintf("f%d", i), 0o644))
		}
		m.parts = filepath.Join(t.TempDir(), "gone") // syncfs fails: no such directory
		m.hold(true)
		stop := m.flusher()
		for _, j := range jobs[:flushFiles] {
			m.verified(j)
		}
		m.hold(false)
		for !m.flushFailed.Load() {
			if time.Now().After(deadline) {
				t.Fatal("the flusher's syncfs did not fail")
			}
			time.Sleep(time.Millisecond)
		}
		m.queue(jobs[flushFiles]) // per-file flushes would work for this one
		stop()
		m.renaming.Wait()
		m.flushQueue()
		for _, j := range jobs {
			if j.placed {
				t.Errorf("%s placed after a failed flush", j.e.Path)
			}
		}
		if len(m.errs) != len(jobs) {
			t.Errorf("%d failures, want %d: %v", len(m.errs), len(jobs), m.errs)
		}
	})
}

// TestMirrorFileModes: a verified file gets the mode of the index, whether
// it is created with it, narrowed by the umask, or an earlier file at its
// temporary path is taken over; and it replaces a directory that appeared
// at its path after the walk.
func TestMirrorFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	m := newFlushRun(t, nil)
	m.opts.NoFsync = true
	for _, tc := range []struct {
		name  string
		mode  fs.FileMode
		stale fs.FileMode // a file at the temporary path before, if not 0
	}{
		{"plain", 0o644, 0},
		{"exec", 0o755, 0},
		{"umask", 0o777, 0},
		{"private", 0o600, 0},
		{"stale", 0o640, 0o666},
		{"dir", 0o644, 0},
	} {
		data := []byte("content of " + tc.name)
		sum := sha256.Sum256(data)
		if tc.stale != 0 {
			p := filepath.Join(m.parts, fmt.Sprintf("%x.tmp", sum))
			if err := os.WriteFile(p, []byte("something else, longer than the content"), tc.stale); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tc.stale)
		}
		if tc.name == "dir" {
			if err := os.MkdirAll(filepath.Join(m.dir, tc.name, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		j := verifiedJob(t, m, tc.name, tc.mode)
		m.queue(j)
		fi, err := os.Lstat(filepath.Join(m.dir, tc.name))
		if err != nil || !j.placed {
			t.Fatalf("%s: not placed: %v %v", tc.name, err, m.errs)
		}
		if fi.Mode() != tc.mode || !fi.ModTime().Equal(j.e.MTime) || fi.Size() != j.e.Size {
			t.Errorf("%s: %v %v %d, want %v %v %d", tc.name, fi.Mode(), fi.ModTime(), fi.Size(), tc.mode, j.e.MTime, j.e.Size)
		}
	}
}

// TestMirrorFinalFlushTakesFlusherVerdict: the last files of a mirror are
// flushed beside the flusher's syncfs under way, and renamed only after
// the call that waits for that one (before) — not at all when it failed:
// a write error is reported to one syncfs only, whichever looks first, so
// the final flush's own success does not vouch for its files then.
func TestMirrorFinalFlushTakesFlusherVerdict(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("failed=%v", fail), func(t *testing.T) {
			m := newFlushRun(t, nil)
			var jobs []*fileJob
			for i := range syncFSMin { // flushed with one syncfs, as at the end of a mirror
				j := verifiedJob(t, m, fmt.Sprintf("f%d", i), 0o644)
				m.queue(j)
				jobs = append(jobs, j)
			}
			called := false
			m.flushQueueAfter(func() {
				called = true
				for _, j := range jobs {
					if j.placed {
						t.Errorf("%s renamed before the other syncfs ended", j.e.Path)
					}
				}
				if fail {
					m.flushFailed.Store(true) // what the flusher does when its syncfs fails
				}
			})
			if !called {
				t.Fatal("the final flush did not wait for the flusher")
			}
			for _, j := range jobs {
				if j.placed == fail {
					t.Errorf("%s: placed %v after the flusher's syncfs failed=%v", j.e.Path, j.placed, fail)
				}
			}
			if want := map[bool]int{false: 0, true: len(jobs)}[fail]; len(m.errs) != want {
				t.Errorf("%d failures, want %d: %v", len(m.errs), want, m.errs)
			}
		})
	}
}

// TestMirrorFlushedToOnlyGrows: syncfs calls that overlap may end in any
// order; the count of those ended never goes back (a file covered by the
// later one would otherwise wait for yet another).
func TestMirrorFlushedToOnlyGrows(t *testing.T) {
	m := newFlushRun(t, nil)
	for _, n := range []int64{1, 3, 2, 4} {
		m.flushedUpTo(n)
	}
	if got := m.flushedTo.Load(); got != 4 {
		t.Fatalf("flushedTo %d after syncfs 1, 3, 2, 4 ended, want 4", got)
	}
	m.flushedUpTo(3)
	if got := m.flushedTo.Load(); got != 4 {
		t.Fatalf("flushedTo %d after syncfs 3 ended late, want 4", got)
	}
}

// TestMirrorFlushesEarlyFilesDuringScan: the files fetched whole beside the
// scan are flushed as soon as the last of them is written, while the scan
// still runs (the disk is idle then), not when it ends. The scan is held at
// its end (the "scanned" event) until a syncfs has ended: without the flush
// started by the early fetches, none runs during the scan, and the test
// fails after its deadline.
func TestMirrorFlushesEarlyFilesDuringScan(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	old := treeData(400, 256<<10)
	treeFile(t, dst, "big.bin", old, 0o644)
	changed := bytes.Clone(old)
	changed[100<<10] ^= 0xff // rebuilt from the old version: there is a scan
	treeFile(t, pub, "big.bin", changed, 0o644)
	for i := range 20 { // new small files: fetched whole beside the scan
		treeFile(t, pub, fmt.Sprintf("new/f%02d.txt", i), treeData(uint64(410+i), 3000), 0o644)
	}
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	flushed := make(chan struct{})
	closeFlushed := sync.OnceFunc(func() { close(flushed) })
	var early atomic.Bool
	opts := mirrorOpts(url, dst)
	opts.NoFsync, opts.hook = false, func(ev string, paths []string) {
		switch {
		case ev == "flushed" && paths == nil:
			closeFlushed()
		case ev == "scanned":
			select {
			case <-flushed:
				early.Store(true)
			case <-time.After(10 * time.Second):
			}
		}
	}
	if _, err := Mirror(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, true)
	if !early.Load() {
		t.Error("no syncfs ended during the scan: the files fetched beside it were not flushed before it ended")
	}
}

// errorLog records what a flushWatch reports.
type errorLog struct{ errs []string }

func (l *errorLog) Errorf(format string, args ...any) {
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

// The watch itself: the order of events that CI once saw (a syncfs that
// started while a file was half written and ended after a flush of that
// file alone, which began once it was complete) is no breach; a rename
// covered only by the flush that saw the file half written, or by no
// flush, is.
func TestFlushWatchOverlappingFlushes(t *testing.T) {
	for _, c := range []struct {
		name   string
		events func(w *flushWatch, tmp, dst string, write func(string))
		breach bool
	}{
		{"later flush of the file ends first", func(w *flushWatch, tmp, dst string, write func(string)) {
			write("half")
			w.hook("flush", nil) // the syncfs: sees half of it
			write("hello, new file\n")
			w.hook("flush", []string{tmp}) // the file alone, complete
			w.hook("flushed", []string{tmp})
			w.hook("flushed", nil) // the syncfs ends last
			w.hook("rename", []string{tmp, dst})
		}, false},
		{"only a flush of the half-written file", func(w *flushWatch, tmp, dst string, write func(string)) {
			write("half")
			w.hook("flush", nil)
			w.hook("flushed", nil)
			write("hello, new file\n")
			w.hook("rename", []string{tmp, dst})
		}, true},
		{"a flush under way", func(w *flushWatch, tmp, dst string, write func(string)) {
			write("hello, new file\n")
			w.hook("flush", nil)
			w.hook("rename", []string{tmp, dst})
			w.hook("flushed", nil)
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
			makeTree(t, pub, map[string][]byte{"new.txt": []byte("hello, new file\n")}, nil)
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			var log errorLog
			w := newFlushWatch(&log, pub, dst)
			part := filepath.Join(dst, ".new.txt"+tmpSuffix)
			c.events(w, part, filepath.Join(dst, "new.txt"), func(s string) {
				// Written over in place, as a fetch writes it: the same inode.
				f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteString(s); err != nil {
					t.Fatal(err)
				}
			})
			if breach := len(log.errs) > 0; breach != c.breach {
				t.Errorf("breach reported: %v (%q), want %v", breach, log.errs, c.breach)
			}
		})
	}
}
