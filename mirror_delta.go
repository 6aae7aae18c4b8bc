package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/sourcegraph/conc/pool"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/seedscan"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Files patched from their old version (docs/trees.md, "Packs"): a file
// whose pack record is raw (its content does not compress) and that has
// block sums (treeindex.Entry.Sums), when an older version is at its
// path, is rebuilt in memory: its sums come with those of the other files
// from their sums packs, the blocks found in the old version are copied,
// and only the missing ones are fetched, as byte ranges of the raw
// record, with those of other files of the same pack.
// The result is verified by length and SHA-256 like any file fetched
// whole. Anything that fails (sums that do not parse, a pack that is gone,
// a response cut short, a result that does not verify) leaves the file to
// be fetched whole from its pack, or by its path.

// patchSeedMax is the largest old version a patch reads: a small file's
// old version is small too, and a file that grew past this shares little
// with a small one.
const patchSeedMax = 1 << 20

// patchBatchBytes bounds the files one batch patches (the larger of each
// file's new and old size), all in memory at once until their ranges
// arrive, old and new: 8 MiB for the patchParallel batches at a time.
const patchBatchBytes = 1 << 20

// patchRangeCost is what one more range of a pack costs beyond its bytes:
// a part of a multipart response (its boundary and headers, about 90
// bytes from nginx) and a little of a request. A patch whose missing
// bytes and ranges cost more than the whole record fetches the record.
const patchRangeCost = 100

// patchable reports whether the file of e, to fetch or rebuild, can be
// patched from the old version at its path.
func (m *mirrorRun) patchable(e *treeindex.Entry) bool {
	if e.Sums == nil || e.Sums.Encoding != treeindex.PackRaw || e.Pack == nil || e.Pack.Encoding != treeindex.PackRaw {
		return false
	}
	fi := m.local[e.Path]
	return fi != nil && fi.Mode().IsRegular() && fi.Size() > 0 && fi.Size() <= patchSeedMax
}

// patch is one file being patched: its content, with the blocks found
// locally in place, and the byte ranges of it still to fetch.
type patch struct {
	j       *fileJob
	f       *control.File // its block sums
	content []byte
	missing []source.Range // of content
	reused  int64
}

// patchFiles patches the jobs, from one task of the pool p: first their
// sums, a few requests for all (see fetchSums), then the files a batch at
// a time, patchParallel batches at once; those it cannot patch are
// fetched whole. Every verified file goes to fetchedOne.
func (m *mirrorRun) patchFiles(ctx context.Context, p *pool.ContextPool, jobs []*fileJob) {
	if len(jobs) == 0 {
		return
	}
	p.Go(func(ctx context.Context) error {
		sums, failed := m.fetchSums(ctx, jobs)
		q := pool.New().WithContext(ctx).WithMaxGoroutines(patchParallel)
		for _, b := range m.patchBatches(jobs, sums) {
			q.Go(func(ctx context.Context) error {
				m.fetchFromPacks(ctx, m.patchBatch(ctx, b, sums))
				return nil
			})
		}
		m.fetchFromPacks(ctx, failed)
		return q.Wait()
	})
}

// patchBatches cuts the jobs that have sums into the batches patched
// together: in the order of their sums (the publisher's walk order, so
// that their records lie together too), of at most patchBatchBytes.
func (m *mirrorRun) patchBatches(jobs []*fileJob, sums map[*fileJob]*control.File) [][]*fileJob {
	var ok []*fileJob
	for _, j := range jobs {
		if sums[j] != nil {
			ok = append(ok, j)
		}
	}
	per := min(packBatchFiles, max(32, (len(ok)+patchParallel-1)/patchParallel))
	batches, _ := byPack(ok, func(j *fileJob) *treeindex.PackRef { return j.e.Sums }, per) // fetchSums left out overlaps
	size := func(j *fileJob) int64 { return max(j.e.Size, m.local[j.e.Path].Size()) }
	return cutBySize(batches, patchBatchBytes, size)
}

// fetchSums fetches and decodes the sums of jobs, from their sums packs,
// many records per request (a few requests for a whole tree: sums are
// 1-3 % of the files' size), and returns them, with the jobs whose sums
// it could not have (a pack gone, a record that does not decode or that
// overlaps another).
func (m *mirrorRun) fetchSums(ctx context.Context, jobs []*fileJob) (sums map[*fileJob]*control.File, failed []*fileJob) {
	sums = make(map[*fileJob]*control.File, len(jobs))
	batches, failed := byPack(slices.Clone(jobs), func(j *fileJob) *treeindex.PackRef { return j.e.Sums }, packBatchFiles)
	for _, b := range batches {
		failed = append(failed, readRecords(ctx, m, b, func(j *fileJob) *treeindex.PackRef { return j.e.Sums }, "sums pack", "files",
			func(j *fileJob, rec []byte) bool {
				f, err := control.DecodeSums(rec, j.e.Size, j.e.SHA256)
				if err != nil {
					m.logf("%s: block sums in pack %s: %v; fetching it whole", j.e.Path, j.e.Sums.Name, err)
					return false
				}
				sums[j] = f
				return true
			})...)
	}
	return sums, failed
}

// patchParallel is how many batches are patched at once: each reads and
// scans its old versions (CPU) before its request, and holds its files in
// memory.
const patchParallel = 4

// cutBySize cuts batches further so that the sizes of the jobs of each
// add up to at most max bytes (a job larger than that has a batch of its
// own).
func cutBySize(batches [][]*fileJob, max int64, size func(*fileJob) int64) (out [][]*fileJob) {
	for _, b := range batches {
		start, n := 0, int64(0)
		for i, j := range b {
			if i > start && n+size(j) > max {
				out = append(out, b[start:i])
				start, n = i, 0
			}
			n += size(j)
		}
		out = append(out, b[start:])
	}
	return out
}

// fetchFromPacks fetches jobs whole from their packs (or by their paths),
// on the calling goroutine.
func (m *mirrorRun) fetchFromPacks(ctx context.Context, jobs []*fileJob) {
	if len(jobs) == 0 {
		return
	}
	batches, apart := m.packBatches(jobs)
	for _, b := range batches {
		for _, j := range m.fetchPackBatch(ctx, b) {
			m.packFallbacks.Add(1)
			m.fetchWholeQueued(ctx, j)
		}
	}
	for _, j := range apart {
		m.logf("%s: its pack record overlaps another; fetching it by its path", j.e.Path)
		m.packFallbacks.Add(1)
		m.fetchWholeQueued(ctx, j)
	}
}

// patchBatch patches one batch of jobs, with their sums, and returns
// those it could not patch.
func (m *mirrorRun) patchBatch(ctx context.Context, batch []*fileJob, sums map[*fileJob]*control.File) (failed []*fileJob) {
	contentBuf, oldBuf := m.batchBuf(), m.batchBuf()
	defer m.batchBufs.Put(contentBuf)
	defer m.batchBufs.Put(oldBuf)
	ps, failed := m.planBatch(ctx, batch, sums, contentBuf, oldBuf)
	byRecord := map[*fileJob]*patch{}
	var fetch []*fileJob
	for _, pt := range ps {
		if len(pt.missing) == 0 {
			if !m.patched(ctx, pt) {
				failed = append(failed, pt.j)
			}
			continue
		}
		byRecord[pt.j] = pt
		fetch = append(fetch, pt.j)
	}
	batches, apart := byPack(fetch, func(j *fileJob) *treeindex.PackRef { return j.e.Pack }, len(fetch))
	failed = append(failed, apart...)
	for _, b := range batches {
		failed = append(failed, m.fetchPatches(ctx, b, byRecord)...)
	}
	m.progress("fetch", false)
	return failed
}

// planBatch returns the patches of the jobs of a batch it can patch, with
// their sums and the blocks found locally in place, and the jobs it
// cannot. The blocks of the whole batch are looked for in the old
// versions of the whole batch with one scan (seedscan: one index over all
// their blocks), so a block that moved from one file to another of the
// batch is found too. The contents are kept one after the other in
// *contentBuf, the old versions in *oldBuf (both grown if need be), until
// the caller is done with the patches.
func (m *mirrorRun) planBatch(ctx context.Context, batch []*fileJob, sums map[*fileJob]*control.File, contentBuf, oldBuf *[]byte) (ps []*patch, failed []*fileJob) {
	var total, oldTotal int64
	for _, j := range batch {
		total += j.e.Size
		oldTotal += m.local[j.e.Path].Size()
	}
	for _, b := range []struct {
		p *[]byte
		n int64
	}{{contentBuf, total}, {oldBuf, oldTotal}} {
		if int64(cap(*b.p)) < b.n {
			*b.p = make([]byte, growTo(b.n))
		}
	}
	free, oldFree := (*contentBuf)[:total], (*oldBuf)[:oldTotal]
	clear(free)
	var (
		targets []seedscan.Target
		seeds   []stages.Seed
	)
	for _, j := range batch {
		content := free[:j.e.Size:j.e.Size]
		free = free[j.e.Size:]
		old, err := readInto(ctx, filepath.Join(m.dir, filepath.FromSlash(j.e.Path)), oldFree)
		if err != nil {
			m.logf("%s: old version: %v; fetching it whole", j.e.Path, err)
			failed = append(failed, j)
			continue
		}
		oldFree = oldFree[len(old):]
		ps = append(ps, &patch{j: j, content: content, f: sums[j]})
		targets = append(targets, seedscan.Target{Control: sums[j]})
		seeds = append(seeds, stages.Seed{Name: j.e.Path, R: bytes.NewReader(old), Size: int64(len(old))})
	}
	if ctx.Err() != nil || len(ps) == 0 {
		return nil, failed
	}
	ms, err := seedscan.Scan(ctx, targets, seeds, seedscan.Options{Workers: 1})
	if err != nil {
		if ctx.Err() == nil {
			m.logf("patching %d files: %v; fetching them whole", len(ps), err)
		}
		for _, pt := range ps {
			failed = append(failed, pt.j)
		}
		return nil, failed
	}
	for i, pt := range ps {
		pt.plan(ms[i], seeds)
	}
	return ps, failed
}

// patchDryRun works out, for a dry run, what patching the jobs would
// fetch (their sums are fetched and their old versions scanned, as in a
// run): it returns the bytes of the jobs' records it would not fetch, and
// the bytes it would take from the old versions.
func (m *mirrorRun) patchDryRun(ctx context.Context, jobs []*fileJob) (saved, reused int64) {
	sums, _ := m.fetchSums(ctx, jobs)
	contentBuf, oldBuf := new([]byte), new([]byte)
	for _, b := range m.patchBatches(jobs, sums) {
		ps, _ := m.planBatch(ctx, b, sums, contentBuf, oldBuf)
		for _, pt := range ps {
			var missing int64
			for _, r := range pt.missing {
				missing += r.Len()
			}
			saved += pt.j.e.Pack.Length - missing
			reused += pt.reused
		}
	}
	return saved, reused
}

// plan copies into the patch's content the blocks found (ms) in the
// batch's old versions (seeds, all bytes.Readers) and sets the ranges to
// fetch: the missing blocks, or the whole file when they and their ranges
// would cost more than its record.
func (pt *patch) plan(ms *stages.Matches, seeds []stages.Seed) {
	e := pt.j.e
	plan := stages.Blueprint(&pt.f.Header, ms)
	if plan.MissingBytes+int64(len(plan.Missing))*patchRangeCost >= e.Pack.Length {
		pt.missing = []source.Range{{Start: 0, End: e.Size}}
		return
	}
	pt.missing = plan.Missing
	bs := int64(pt.f.Blocksize)
	for _, c := range plan.Copies {
		dst := pt.content[c.Index*bs : min(e.Size, (c.Index+c.Count)*bs)]
		// The last block of an old version is compared zero-padded: what
		// lies past its end is zeros, as the content there already is.
		seeds[c.Seed].R.ReadAt(dst, c.Offset)
	}
	pt.reused = plan.Reused
}

// readInto reads the regular file at p whole into the start of buf, if it
// fits, and returns its content. Anything else at p (a FIFO put there
// since the walk, whose open would wait for a writer) is refused at once.
func readInto(ctx context.Context, p string, buf []byte) ([]byte, error) {
	f, fi, err := osfile.OpenRegular(ctx, p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > int64(len(buf)) {
		return nil, errors.New("it grew since it was listed")
	}
	b := buf[:fi.Size()]
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// fetchPatches fetches the missing ranges of a batch of patches whose
// records are in one pack (in offset order, none overlapping), completes
// each patch as its last range arrives, and returns the jobs not patched.
func (m *mirrorRun) fetchPatches(ctx context.Context, batch []*fileJob, ps map[*fileJob]*patch) (failed []*fileJob) {
	type part struct {
		pt   *patch
		r    source.Range // of the content
		last bool
	}
	var (
		ranges []source.Range
		parts  []part
	)
	for _, j := range batch {
		pt := ps[j]
		for i, r := range pt.missing {
			ranges = append(ranges, source.Range{Start: j.e.Pack.Offset + r.Start, End: j.e.Pack.Offset + r.End})
			parts = append(parts, part{pt, r, i == len(pt.missing)-1})
		}
	}
	done := map[*fileJob]bool{}
	defer func() {
		for _, j := range batch {
			if !done[j] {
				failed = append(failed, j)
			}
		}
	}()
	name := batch[0].e.Pack.Name
	src, release, err := m.src.ranges(ctx, treeindex.PackPath(name), -1)
	if err != nil {
		m.logf("pack %s: %v; fetching its %d files whole", name, err, len(batch))
		return
	}
	defer release()
	i := 0
	err = src.ReadRanges(ctx, ranges, func(r source.Range, data io.Reader) error {
		for i < len(ranges) && ranges[i] != r {
			i++
		}
		if i == len(ranges) {
			return fmt.Errorf("pack %s: the source delivered a range not asked for", name)
		}
		pa := parts[i]
		if _, err := io.ReadFull(data, pa.pt.content[pa.r.Start:pa.r.End]); err != nil {
			return err
		}
		m.fetched.Add(pa.r.Len())
		if pa.last {
			done[pa.pt.j] = m.patched(ctx, pa.pt)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.logf("pack %s: %v; fetching the rest of its patched files whole", name, err)
	}
	return
}

// patched verifies and writes a patch's content and hands the file to
// fetchedOne; it reports whether it did.
func (m *mirrorRun) patched(ctx context.Context, pt *patch) bool {
	j := pt.j
	m.creating.RLock()
	err := m.writeVerifiedBytes(j, pt.content)
	m.creating.RUnlock()
	if err != nil {
		m.logf("%s: patched from its old version: %v; fetching it whole", j.e.Path, err)
		return false
	}
	m.reused.Add(pt.reused)
	m.packedFiles.Add(1)
	m.patchedFiles.Add(1)
	m.fetchedOne(ctx, j)
	return true
}
