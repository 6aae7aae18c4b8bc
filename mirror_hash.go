package zsyncpipe

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// The local files whose content the state cannot vouch for are hashed
// while the index is read and Dir is walked (see docs/trees.md, "What
// runs when"): a file is hashed as soon as both the index and the walk
// have named it, by a few workers (hashQueue) that read it with one
// buffer each. A hash is a fact about a local file (its size, mtime and
// content), true whatever the index turns out to be: an index refused
// later has only made the run read some files.

// hashJoin meets the entries of the index, as they are read, with the
// files of the walk, as they are found, under one lock.
type hashJoin struct {
	mu   sync.Mutex
	want map[string]int64 // sizes of the files of the index the walk has not reached
	// Directories the walk left open, so that their files are opened
	// from them (openat: no lookup of the whole path), until closeDirs.
	dmu    sync.Mutex
	dirs   map[string]int // descriptor by slash-separated path
	open   []*os.File
	closed bool
	max    int // maxKeptDirs, read once per run (it was a getrlimit per directory); 0 until then
}

// openFilesBeyondDirs is about how many files a run has open at once
// besides the directories it keeps: the parts being rebuilt, the seeds
// being read, the files being written and hashed. Only the descriptor
// table's first size depends on it (osfile.ReserveDescriptors).
const openFilesBeyondDirs = 2048

// keepDir takes the directory rel the walk opened, while there is room.
func (m *mirrorRun) keepDir(rel string, d *os.File, fd int) bool {
	j := &m.join
	j.dmu.Lock()
	defer j.dmu.Unlock()
	if j.dirs == nil {
		j.max = maxKeptDirs()
	}
	if j.closed || len(j.open) >= j.max {
		return false
	}
	if j.dirs == nil {
		j.dirs = map[string]int{}
	}
	j.dirs[rel] = fd
	j.open = append(j.open, d)
	return true
}

// closeDirs closes the directories keepDir took; the hashing (which
// opens files from them) must be over.
func (m *mirrorRun) closeDirs() {
	j := &m.join
	j.dmu.Lock()
	defer j.dmu.Unlock()
	j.closed = true
	for _, d := range j.open {
		d.Close()
	}
	j.open, j.dirs = nil, nil
}

// dirOf returns how to open the local file rel: a descriptor of its
// directory kept open and its name in it, or atCWD and its whole path.
func (m *mirrorRun) dirOf(rel string) (dirfd int, name string) {
	j := &m.join
	dir, base := path.Split(rel)
	j.dmu.Lock()
	fd, ok := j.dirs[strings.TrimSuffix(dir, "/")]
	j.dmu.Unlock()
	if ok {
		return fd, base
	}
	return atCWD, filepath.Join(m.dir, filepath.FromSlash(rel))
}

// found is called by the walk for every path of Dir (before classify).
func (m *mirrorRun) found(rel string, fi os.FileInfo) {
	m.join.mu.Lock()
	defer m.join.mu.Unlock()
	m.local[rel] = fi
	if size, ok := m.join.want[rel]; ok {
		delete(m.join.want, rel)
		m.consider(rel, fi, size)
	}
}

// listed is called for every entry of the index as it is read: it
// records the path (see paths) and, for a file, joins it with the walk.
func (m *mirrorRun) listed(e *treeindex.Entry) {
	if m.paths == nil {
		m.paths = make(map[string]struct{}, 1<<14)
	}
	m.paths[e.Path] = struct{}{}
	if e.Type != treeindex.File {
		return
	}
	m.join.mu.Lock()
	defer m.join.mu.Unlock()
	if fi, ok := m.local[e.Path]; ok {
		m.consider(e.Path, fi, e.Size)
		return
	}
	if m.join.want == nil {
		m.join.want = map[string]int64{}
	}
	m.join.want[e.Path] = e.Size
}

// inIndex reports whether the index lists rel.
func (m *mirrorRun) inIndex(rel string) bool {
	_, ok := m.paths[rel]
	return ok
}

// consider queues the local file rel for hashing when its size is size,
// that of the index's file at rel, and the state cannot vouch for its content (as
// classify decides: unless Checksum, a file the state vouches for is
// trusted, to hold the index's file or, with another hash, not to).
func (m *mirrorRun) consider(rel string, fi os.FileInfo, size int64) {
	if !fi.Mode().IsRegular() || fi.Size() != size {
		return
	}
	if !m.opts.Checksum && m.knownHash(rel, fi) != "" {
		return
	}
	m.hq.add(rel, fi.Size())
}

// joined is called once the index is read and Dir walked: the want list
// is done with, and the local files that may hold the content of a file
// surely fetched or rebuilt (no local file of its size at its path) are
// queued too, those findMoved would hash (a file moved or copied in the
// new tree is then copied locally).
func (m *mirrorRun) joined() {
	m.join.mu.Lock()
	m.join.want = nil
	m.join.mu.Unlock()
	sizes := map[int64]bool{}
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.File || e.Data != nil || e.Size == 0 {
			continue
		}
		if fi := m.local[e.Path]; fi == nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
			sizes[e.Size] = true
		}
	}
	for rel, fi := range m.local {
		if fi.Mode().IsRegular() && sizes[fi.Size()] && m.knownHash(rel, fi) == "" {
			m.hq.add(rel, fi.Size())
		}
	}
}

// freshHash returns the hash of the local file rel (as fi describes it)
// this run computed or, unless onlyFresh, the state vouches for; "" when
// neither knows it, or when this run failed to read it.
func (m *mirrorRun) freshHash(rel string, fi os.FileInfo, onlyFresh bool) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, hashed := m.hashed[rel]
	if hashed && h == "" || !hashed && onlyFresh {
		return ""
	}
	return m.st.hashOf(rel, fi)
}

// hashQueue hashes local files on a few goroutines, the largest of those
// queued first, recording each result in the run's state (m.hashed,
// m.st). A file is hashed on one core: taken in the order they were
// queued, SciPy's 36 MB libscipy_openblas, the last entry of its index,
// was hashed alone at the end while the other core waited (the hash phase
// of 1.14.0 -> 1.14.1 ended at 0.053 s on average, and at 0.045 s largest
// first; 6 alternating runs).
type hashQueue struct {
	m       *mirrorRun
	mu      sync.Mutex
	cond    sync.Cond
	todo    bySize // a heap: the largest first
	queued  map[string]bool
	closed  bool
	wg      sync.WaitGroup
	started bool
	phase   string
	end     func() // of the phase
}

// hashWorkers is how many files are hashed at once: Workers when set,
// else four, more than the cores, so that reads from a disk overlap (from
// the page cache, hashing is CPU-bound and the extra workers cost
// nothing).
func (m *mirrorRun) hashWorkers() int {
	if w := m.workers(); w > 0 {
		return w
	}
	return 4
}

// newHashQueue returns a queue whose work is the phase named phase.
func newHashQueue(m *mirrorRun, phase string) *hashQueue {
	q := &hashQueue{m: m, phase: phase, queued: map[string]bool{}}
	q.cond.L = &q.mu
	return q
}

// add queues rel, a file of size bytes, once.
func (q *hashQueue) add(rel string, size int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[rel] || q.closed {
		return
	}
	q.queued[rel] = true
	heap.Push(&q.todo, queuedFile{rel, size})
	if !q.started {
		q.started = true
		q.end = q.m.phase(q.phase)
		for range q.m.hashWorkers() {
			q.wg.Add(1)
			go q.work()
		}
	}
	q.cond.Signal()
}

// wait ends the queue once what was added is hashed, or when ctx ends.
func (q *hashQueue) wait(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.todo = nil
		q.mu.Unlock()
	})
	defer stop()
	q.wg.Wait()
	if q.end != nil {
		q.end()
		q.end = nil
	}
	return ctx.Err()
}

func (q *hashQueue) work() {
	defer q.wg.Done()
	m := q.m
	buf := make([]byte, hashBufSize)
	h := sha256.New()
	var chunks rollsum.Chunks
	both := hashAndChunks{h, &chunks}
	for {
		f, ok := q.next()
		if !ok {
			return
		}
		rel := f.rel
		// The chunk checksums of a file that may be an aligned seed of
		// the scan (two blocks or more), made from the same reads.
		withChunks := f.size >= 2*rollsum.ChunkSize
		var w hash.Hash = h
		if withChunks {
			w = both
		}
		sum, fi, err := hashFileWith(m.dirOf(rel))(buf, w)
		var sums []uint32
		if withChunks {
			sums = chunks.Sums() // and starts afresh, also after an error
		}
		m.mu.Lock()
		if m.hashed == nil {
			m.hashed = make(map[string]string, 4096)
		}
		m.hashed[rel] = sum // "" when unreadable: fetched again
		if err == nil {
			m.st.Files[rel] = fileState{Size: fi.Size(), MTime: fi.ModTime().UnixNano(), SHA256: sum}
			m.dirty = true
			if sums != nil {
				if m.chunkSums == nil {
					m.chunkSums = make(map[string][]uint32, 4096)
				}
				m.chunkSums[rel] = sums
			}
		}
		m.mu.Unlock()
	}
}

// hashAndChunks is a hash.Hash whose writes also go to a rollsum.Chunks:
// the file hashed gets its chunk checksums from the same reads (see
// stages.Seed.ChunkSums).
type hashAndChunks struct {
	hash.Hash
	chunks *rollsum.Chunks
}

func (h hashAndChunks) Write(p []byte) (int, error) {
	h.chunks.Write(p)
	return h.Hash.Write(p)
}

// queuedFile is a file in a hashQueue.
type queuedFile struct {
	rel  string
	size int64
}

// bySize is a heap (container/heap) of files, the largest on top.
type bySize []queuedFile

func (h bySize) Len() int           { return len(h) }
func (h bySize) Less(i, j int) bool { return h[i].size > h[j].size }
func (h bySize) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *bySize) Push(x any)        { *h = append(*h, x.(queuedFile)) }
func (h *bySize) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// next returns the largest file queued, waiting for one; false once the
// queue is closed and empty.
func (q *hashQueue) next() (f queuedFile, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.todo) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.todo) == 0 {
		return queuedFile{}, false
	}
	return heap.Pop(&q.todo).(queuedFile), true
}

// hashBufSize is the read buffer of hashFile: most files of a tree in one
// read.
const hashBufSize = 256 << 10

// hashFile returns the SHA-256 of the file at p, in hex, and its stat,
// reading through buf.
func hashFile(p string, buf []byte) (string, os.FileInfo, error) {
	return hashFileWith(atCWD, p)(buf, sha256.New())
}

// hashFileWith returns hashFile for the file name in the directory dirfd
// (atCWD: name is a path), with a hash.Hash to reuse (it is reset).
func hashFileWith(dirfd int, name string) func(buf []byte, h hash.Hash) (string, os.FileInfo, error) {
	return func(buf []byte, h hash.Hash) (string, os.FileInfo, error) {
		h.Reset()
		fi, err := readFileInto(dirfd, name, buf, h)
		if err != nil {
			return "", nil, err
		}
		var sum [sha256.Size]byte
		return hex.EncodeToString(h.Sum(sum[:0])), fi, nil
	}
}

// hashLocal is hashFile with a read buffer of the run's.
func (m *mirrorRun) hashLocal(p string) (string, os.FileInfo, error) {
	b := m.buf()
	defer m.bufs.Put(b)
	return hashFile(p, *b)
}

// errChanged reports a file whose length changed while it was read.
var errChanged = errors.New("changed while it was read")

// readPathInto writes the content of the regular file at p to w, reading
// through buf, and returns its stat: readFileInto where directories are
// not kept open. Anything else at p, such as a FIFO put there since the
// walk, is refused at once (osfile.OpenRegular) instead of waiting for a
// writer.
func readPathInto(p string, buf []byte, w io.Writer) (os.FileInfo, error) {
	// The open does not block, so no context is needed to end it.
	f, fi, err := osfile.OpenRegular(context.Background(), p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := readAll(f.Read, fi.Size(), buf, w); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return fi, nil
}

// readAll copies a file of size bytes (as fstat said before the first
// read) from read to w through buf. A read shorter than buf that reaches
// size ends it without another read (a regular file's read is short only
// at its end); a file that turns out longer or shorter than size is an
// error.
func readAll(read func([]byte) (int, error), size int64, buf []byte, w io.Writer) error {
	var n int64
	for {
		k, err := read(buf)
		if k > 0 {
			w.Write(buf[:k])
			n += int64(k)
		}
		if err == io.EOF || err == nil && k == 0 {
			break
		}
		if err != nil {
			return err
		}
		if k < len(buf) && n >= size {
			break
		}
	}
	if n != size {
		return fmt.Errorf("%w (%d bytes, then %d)", errChanged, size, n)
	}
	return nil
}

// triedHash reports whether this run hashed rel already (or failed to).
func (m *mirrorRun) triedHash(rel string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.hashed[rel]
	return ok
}

// stop drops what is still queued and waits for the files being hashed:
// a run that ends early (a refused index) reads no more.
func (q *hashQueue) stop() {
	q.mu.Lock()
	q.todo = nil
	q.mu.Unlock()
	q.wait(context.Background())
}

// retouch gives the unchanged files es the mode and mtime the index
// lists, beside the run (the plan does not depend on them; on the
// divergent Go pair they are 6,415 files, two or three system calls
// each, that would delay the scan): only what differs is set, and the
// state records the new mtime. An error fails the run at its end.
func (m *mirrorRun) retouch(es []*treeindex.Entry) {
	if len(es) == 0 {
		return
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		defer m.phase("retouch")()
		for _, e := range es {
			fi := m.local[e.Path]
			p := filepath.Join(m.dir, filepath.FromSlash(e.Path))
			var err error
			if treeindex.ModeOf(fi.Mode()) != e.Mode {
				err = os.Chmod(p, e.Mode)
			}
			mtime := fi.ModTime()
			if err == nil && !e.MTime.IsZero() && !mtime.Equal(e.MTime) {
				err = os.Chtimes(p, e.MTime, e.MTime)
				mtime = e.MTime
			}
			if err != nil {
				m.mu.Lock()
				m.bgErr = cmp.Or(m.bgErr, fmt.Errorf("mirror: %w", err))
				m.mu.Unlock()
				return
			}
			// Recorded without another stat: on a filesystem that keeps
			// coarser times than the index's, the next run finds
			// another mtime and hashes the file again.
			m.mu.Lock()
			m.st.Files[e.Path] = fileState{Size: fi.Size(), MTime: mtime.UnixNano(), SHA256: e.Hex()}
			m.dirty = true
			m.mu.Unlock()
		}
	}()
}

// mayBeReady reports whether an earlier run may have left the job's
// content complete (see ready), so that its control file may not be
// needed.
func (m *mirrorRun) mayBeReady(j *fileJob) bool {
	if p := m.partPath(j); m.leftInParts(p) {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return m.stale[m.tmpBeside(j.e.Path)]
}
