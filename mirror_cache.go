package zsyncpipe

import (
	"slices"
	"sync"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

// dropCache drops the cached pages of local files the scan was the last
// to read: the old versions of changed files and the files the new tree
// drops, 256 KiB or larger (most of their bytes; the small ones cost a
// system call each for little). Each stays on disk until a verified file
// replaces it; the pages the rebuilds write next reuse theirs, instead of
// pages the system has not touched for a while, which cost a fault in the
// host when the system runs in a virtual machine that hands free memory
// back (see docs/trees.md, "What runs when"). A failure only leaves the
// pages cached. Most of those pages are gone by then: scanDropper drops
// the stretches in which the scan found nothing while it runs. Their bytes
// count in m.dropped (see dropWritten).
func (m *mirrorRun) dropCache(files []dropSeed) {
	if len(files) == 0 {
		return
	}
	end := m.phase("drop cache")
	defer end()
	for _, f := range files {
		osfile.DropCache(f.path)
		m.dropped.Add(f.size)
	}
}

// dropCacheMin is the smallest file dropCache drops the pages of.
const dropCacheMin = 256 << 10

// dropWritten drops the cached pages of a file the run wrote, now renamed
// into place at dst, while the run has freed fewer bytes of cached pages
// than it writes (m.dropped against m.total): the files written after it
// reuse them. rsync, which renames each new file over its old one as soon
// as it is written, gets that from the pages the old version frees; the
// mirror keeps the old versions until the scan has read them all, and
// drops their pages then (dropCache), which is as much as it writes when
// a tree changes in place (go1.24.4 -> go1.24.5: 123 MB dropped, 124 MB
// written), but not when it grows or gains files (go1.22.12 -> go1.24.5:
// 118 MB dropped, 190 MB written): the last rebuilds then wrote into pages
// the system had not touched for seconds, which on a virtual machine that
// hands free memory back to its host cost a fault in the host each
// (docs/trees.md, "What runs when"). Dropping more than that only costs
// the time to free them. Files under dropCacheMin stay: the kernel keeps
// the small folios of a small file, once freed, in per-CPU lists of their
// own size, which do not serve the larger folios of the writes after it
// (docs/trees-measurements.md, "Where it stands: twenty-seventh session").
// A file's pages are dropped only when they are clean: it was flushed
// before its rename (not with NoFsync, where dropping would start their
// writeback). A file other jobs copy from stays cached for them. A failure
// only leaves the pages cached.
func (m *mirrorRun) dropWritten(j *fileJob, dst string) {
	if m.opts.NoFsync || j.e.Size < dropCacheMin || len(j.dups) > 0 {
		return
	}
	if m.dropped.Add(j.e.Size)-j.e.Size >= m.total {
		m.dropped.Add(-j.e.Size) // enough freed: this one stays
		return
	}
	osfile.DropCache(dst)
}

// scanDropper drops the cached pages of the local files the scan reads for
// the last time (those dropCache drops after it) while the scan runs:
// every stretch of such a file whose segments the scan has all read
// without finding anything of the new files. The pages of the files
// fetched whole beside the scan, and of the blocks it finds, then reuse
// theirs; on the divergent Go pair that is most of the 155 MB of old
// versions, which the scan would otherwise hold until its end. Adjacent
// stretches are dropped together: the kernel drops whole folios only, and
// a file written in large pieces may be cached in folios of up to 2 MiB,
// more than a segment.
//
// A stretch keeps margin bytes cached at each end where the file goes on
// with data not known to hold nothing: the scan of the segment before
// reads a block or two into it (stages.DeltaOptions.Scanned; two workers
// do not always finish segments in order), and Extend reads up to
// seedscan.ExtendReach blocks on from the blocks found next to it. Without
// the margins, those reads found the pages gone and read them from disk
// again, with the kernel's readahead: 2 to 10 MB per run on the divergent
// Go pair (docs/trees-measurements.md, "Where it stands: twenty-first
// session"). When the stretch next to it turns out to hold nothing too,
// the two are dropped as one, margins and all.
type scanDropper struct {
	margin int64
	drop   func(path string, off, n int64) // osfile.DropCacheRange; tests record the calls
	seeds  map[int]dropSeed                // by seed number: the files to drop

	mu   sync.Mutex
	done map[int][]span // by seed number: the stretches scanned without a find, sorted, merged
}

// dropSeed is a file scanDropper or dropCache drops the pages of.
type dropSeed struct {
	path string
	size int64
}

// span is a stretch [start, end) of a file.
type span struct{ start, end int64 }

// newScanDropper returns a scanDropper that keeps margin bytes cached next
// to stretches not known to hold nothing.
func newScanDropper(margin int64) *scanDropper {
	return &scanDropper{
		margin: margin,
		drop:   func(p string, off, n int64) { osfile.DropCacheRange(p, off, n) },
		seeds:  map[int]dropSeed{},
		done:   map[int][]span{},
	}
}

// add makes seed number seed, the file at path of size bytes, one to
// drop. Calls come before the scan.
func (d *scanDropper) add(seed int, path string, size int64) {
	d.seeds[seed] = dropSeed{path, size}
}

// scanned is the scan's stages.DeltaOptions.Scanned.
func (d *scanDropper) scanned(seed int, start, end int64, found bool) {
	f, ok := d.seeds[seed]
	if !ok || found || end <= start {
		return
	}
	d.mu.Lock()
	all, s := merge(d.done[seed], span{start, end})
	d.done[seed] = all
	d.mu.Unlock()
	if s.start > 0 {
		s.start += d.margin
	}
	if s.end < f.size {
		s.end -= d.margin
	}
	if s.end > s.start {
		d.drop(f.path, s.start, s.end-s.start)
	}
}

// merge adds n to the sorted, disjoint spans in all, joining it with the
// spans it touches, and returns the spans and the one that holds n.
func merge(all []span, n span) ([]span, span) {
	i, _ := slices.BinarySearchFunc(all, n.start, func(s span, off int64) int {
		switch {
		case s.end < off:
			return -1
		case s.start > off:
			return 1
		}
		return 0
	})
	j := i
	for j < len(all) && all[j].start <= n.end {
		n.start, n.end = min(n.start, all[j].start), max(n.end, all[j].end)
		j++
	}
	return slices.Replace(all, i, j, n), n
}
