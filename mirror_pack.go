package zsyncpipe

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/sourcegraph/conc/pool"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Small files from packs (docs/trees.md, "Packs"): a file fetched whole
// whose entry locates its content in a pack is fetched together with
// others of the same pack, as byte ranges of the pack (nearby ranges are
// merged and each request holds a bounded number of them: the range
// source does both), decoded with a hard limit at the index's size, and
// verified by length and SHA-256 like any other. A file that cannot be had
// from its pack (pack missing, a short or failed response, corrupt data,
// a hash mismatch) is fetched whole by its path, and counted.

// Bounds of one batch of pack records fetched by one ReadRanges call: the
// batches of one run are fetched Parallel at a time.
const (
	packBatchFiles = 512
	packBatchBytes = 8 << 20
)

// packed reports whether the job's file can come from a pack.
func packed(j *fileJob) bool {
	return j.how == "whole" && knownPack(j.e.Pack)
}

// knownPack reports whether p is a pack record this client can decode.
func knownPack(p *treeindex.PackRef) bool {
	if p == nil {
		return false
	}
	switch p.Encoding {
	case treeindex.PackZstd, treeindex.PackS2, treeindex.PackRaw:
		return true
	}
	return false
}

// preferPacks turns the rebuilds whose missing data is longer than their
// compressed record in a pack, less rebuildCost, into files fetched from
// the pack: the publisher packs files with a control file too when they
// are small enough, and a changed source file is often shorter compressed
// whole than its changed blocks are raw. A file the scan found whole stays
// a rebuild (a copy of local data).
func (m *mirrorRun) preferPacks(syncs []*fileJob) {
	for _, j := range syncs {
		p := j.e.Pack
		if j.how != "sync" || !knownPack(p) {
			continue
		}
		if missing := j.e.Size - j.reused; missing > 0 && p.Length < missing+rebuildCost {
			j.how = "whole"
			m.reused.Add(-j.reused)
			j.reused = 0
		}
	}
}

// rebuildCost is what rebuilding a file from its blocks costs beyond the
// bytes of its missing blocks, counted in bytes that fetching it whole
// from its pack may download instead: range requests of its own (a round
// trip, and headers of a few hundred bytes each), and a run of the sync
// pipeline (open its partial result, write, verify, close) where a pack
// batch writes many small files from one response. Measured on go1.22.12
// -> go1.24.5 (docs/trees-measurements.md, "Where it stands: eighth session"): 16 KiB
// moves 330 of the 416 rebuilds (the small source files, 10 MB in all)
// into packs for 1.7 MB more downloaded (144.1 MB against rsync's
// 148.5 MB), 325 fewer requests and 0.2-0.85 s less CPU; on go1.24.4 ->
// go1.24.5, 36 KB more. Over a slow link a round trip costs more than
// 16 KiB.
const rebuildCost = 16 << 10

// packBatches groups the jobs to fetch from packs by pack, in offset
// order, into batches of at most packBatchFiles records and packBatchBytes
// bytes, and at least enough batches to keep Parallel requests busy. Jobs
// whose records overlap one of the batch (only a hostile index has them)
// are returned apart, to be fetched by their path.
func (m *mirrorRun) packBatches(jobs []*fileJob) (batches [][]*fileJob, apart []*fileJob) {
	per := min(packBatchFiles, max(32, (len(jobs)+m.opts.Parallel-1)/m.opts.Parallel))
	return byPack(jobs, func(j *fileJob) *treeindex.PackRef { return j.e.Pack }, per)
}

// byPack sorts items by the pack and offset of their records (ref) and
// cuts them into batches of one pack each, of at most per records and
// packBatchBytes bytes. Items whose records overlap one of the batch
// (only a hostile index has them) are returned apart.
func byPack[T any](items []T, ref func(T) *treeindex.PackRef, per int) (batches [][]T, apart []T) {
	slices.SortFunc(items, func(a, b T) int {
		pa, pb := ref(a), ref(b)
		return cmp.Or(cmp.Compare(pa.Name, pb.Name), cmp.Compare(pa.Offset, pb.Offset))
	})
	var (
		cur   []T
		bytes int64
	)
	for _, it := range items {
		p := ref(it)
		if n := len(cur); n > 0 {
			last := ref(cur[n-1])
			if last.Name == p.Name && p.Offset < last.Offset+last.Length {
				apart = append(apart, it)
				continue
			}
			if last.Name != p.Name || n >= per || bytes+p.Length > packBatchBytes {
				batches = append(batches, cur)
				cur, bytes = nil, 0
			}
		}
		cur = append(cur, it)
		bytes += p.Length
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches, apart
}

// fetchPacks fetches the jobs from their packs on the pool, and each job
// that cannot be had from its pack by its path, handing every verified
// file to fetchedOne.
func (m *mirrorRun) fetchPacks(ctx context.Context, p *pool.ContextPool, jobs []*fileJob) {
	batches, apart := m.packBatches(jobs)
	for _, b := range batches {
		p.Go(func(ctx context.Context) error {
			for _, j := range m.fetchPackBatch(ctx, b) {
				m.packFallbacks.Add(1)
				m.fetchWholeQueued(ctx, j)
			}
			return nil
		})
	}
	for _, j := range apart {
		p.Go(func(ctx context.Context) error {
			m.logf("%s: its pack record overlaps another; fetching it by its path", j.e.Path)
			m.packFallbacks.Add(1)
			m.fetchWholeQueued(ctx, j)
			return nil
		})
	}
}

// fetchWholeQueued fetches a job's file whole by its path and hands it to
// fetchedOne.
func (m *mirrorRun) fetchWholeQueued(ctx context.Context, j *fileJob) {
	m.creating.RLock()
	err := m.fetchWhole(ctx, j)
	m.creating.RUnlock()
	if err != nil {
		m.fail(err)
	} else {
		m.fetchedOne(ctx, j)
	}
}

// fetchPackBatch fetches the records of one batch (one pack, in offset
// order) and writes, verifies and queues each file. It returns the jobs
// it could not complete.
func (m *mirrorRun) fetchPackBatch(ctx context.Context, batch []*fileJob) (failed []*fileJob) {
	scratch := m.batchBuf()
	defer m.batchBufs.Put(scratch)
	failed = readRecords(ctx, m, batch, func(j *fileJob) *treeindex.PackRef { return j.e.Pack }, "pack", "files",
		func(j *fileJob, rec []byte) bool {
			m.fetched.Add(int64(len(rec)))
			content, err := m.decodeRecord(j.e, rec, scratch)
			if err == nil {
				m.creating.RLock()
				err = m.writeVerifiedBytes(j, content)
				m.creating.RUnlock()
			}
			if err != nil {
				m.logf("%s: from pack %s: %v; fetching it by its path", j.e.Path, j.e.Pack.Name, err)
				return false
			}
			m.packedFiles.Add(1)
			m.fetchedOne(ctx, j)
			return true
		})
	m.progress("fetch", false)
	return failed
}

// readRecords reads the records (ref) of one batch of items, all of one
// pack in offset order, through one range source, and hands each record
// to use (the buffer is reused after use returns), which reports whether
// the item is complete. It returns the items not completed: a response
// that fails or is cut short leaves the rest of the batch to the caller.
// kind and noun name the pack and the items in notes ("pack", "files").
func readRecords[T any](ctx context.Context, m *mirrorRun, batch []T, ref func(T) *treeindex.PackRef, kind, noun string, use func(T, []byte) bool) (failed []T) {
	name := ref(batch[0]).Name
	done := make([]bool, len(batch))
	defer func() {
		for i, it := range batch {
			if !done[i] {
				failed = append(failed, it)
			}
		}
	}()
	src, release, err := m.src.ranges(ctx, treeindex.PackPath(name), -1)
	if err != nil {
		m.logf("%s %s: %v; fetching its %d %s by their paths", kind, name, err, len(batch), noun)
		return
	}
	defer release()
	ranges := make([]source.Range, len(batch))
	for i, it := range batch {
		p := ref(it)
		ranges[i] = source.Range{Start: p.Offset, End: p.Offset + p.Length}
	}
	i := 0
	recBuf := m.batchBuf()
	defer m.batchBufs.Put(recBuf)
	rec := *recBuf
	defer func() { *recBuf = rec[:0] }()
	err = src.ReadRanges(ctx, ranges, func(r source.Range, data io.Reader) error {
		for i < len(batch) && ranges[i] != r {
			i++ // the source delivers in order; never skips, but be safe
		}
		if i == len(batch) {
			return fmt.Errorf("%s %s: the source delivered a range not asked for", kind, name)
		}
		if int64(cap(rec)) < r.Len() {
			rec = make([]byte, growTo(r.Len()))
		}
		rec = rec[:r.Len()]
		if _, err := io.ReadFull(data, rec); err != nil {
			return err // the response failed: the rest is fetched by path
		}
		done[i] = use(batch[i], rec)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.logf("%s %s: %v; fetching the rest of its %s by their paths", kind, name, err, noun)
	}
	return
}

// batchBuf returns a buffer for the records of a batch, or for their
// decoded contents, from the run's pool (batchBufs): a run fetches hundreds
// of batches, and each took buffers of its own before (about 9 MB of new
// memory per run on a Go toolchain update: docs/trees-measurements.md,
// "Where it stands: twentieth session").
func (m *mirrorRun) batchBuf() *[]byte {
	if b, ok := m.batchBufs.Get().(*[]byte); ok {
		return b
	}
	return new([]byte)
}

// growTo is the capacity a batch's buffer grows to for n bytes: a power
// of two, at least 64 KiB, so that a pooled buffer grows a few times in a
// run instead of at every larger record.
func growTo(n int64) int64 {
	return max(64<<10, int64(1)<<bits.Len64(uint64(n-1)))
}

// decodeRecord returns the content of e from its pack record: at most
// e.Size bytes (zstd: e.Size+zstdSlack) are ever produced, whatever the
// record claims, and a content of another length is an error. It decodes
// into *scratch, the caller's buffer for the records of a batch, and
// grows it when it is too small.
func (m *mirrorRun) decodeRecord(e *treeindex.Entry, rec []byte, scratch *[]byte) ([]byte, error) {
	if e.Pack.Encoding == treeindex.PackRaw {
		return rec, nil
	}
	if int64(cap(*scratch)) < e.Size+zstdSlack {
		*scratch = make([]byte, 0, growTo(e.Size+zstdSlack))
	}
	switch e.Pack.Encoding {
	case treeindex.PackZstd:
		d, err := m.packDecoder()
		if err != nil {
			return nil, err
		}
		// The capacity bounds the decoder (WithDecodeAllCapLimit): the
		// size and a few bytes of slack, without which it decodes every
		// block with its slower bounds-exact copies; more than the size
		// is an error.
		out, err := d.DecodeAll(rec, (*scratch)[:0:e.Size+zstdSlack])
		if err == nil && int64(len(out)) != e.Size {
			err = fmt.Errorf("the record decodes to %d bytes, not %d", len(out), e.Size)
		}
		if err != nil {
			return nil, fmt.Errorf("zstd: %w: %w", ErrVerify, err)
		}
		return out, nil
	case treeindex.PackS2:
		// The block states its decoded length first: nothing is decoded
		// unless that is the index's size.
		if n, err := s2.DecodedLen(rec); err != nil || int64(n) != e.Size {
			return nil, fmt.Errorf("s2: %w: the record decodes to %d bytes, not %d (%v)", ErrVerify, n, e.Size, err)
		}
		out, err := s2.Decode((*scratch)[:e.Size], rec)
		if err != nil {
			return nil, fmt.Errorf("s2: %w: %w", ErrVerify, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("pack encoding %q: %w", e.Pack.Encoding, ErrVerify)
}

// zstdSlack is the room a zstd destination buffer has past the content:
// with less than 32 bytes (its compressedBlockOverAlloc), the decoder uses
// bounds-exact copies for every block: the records of 2,000 files of Go's
// own source took 36.7 ms against 30.9 ms (best of 40 alternated rounds;
// see BenchmarkDecodeRecord).
const zstdSlack = 64

// packDecoder returns the run's zstd decoder, made on first use. DecodeAll
// is limited to the capacity of its destination (the entry's size), and
// windows to what the publisher can have used.
func (m *mirrorRun) packDecoder() (*zstd.Decoder, error) {
	m.decOnce.Do(func() {
		m.dec, m.decErr = zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxWindow(2*treeindex.MaxPacked), zstd.WithDecoderLowmem(true))
	})
	return m.dec, m.decErr
}

// Control files from packs (docs/trees.md, "Packs"): the publisher also
// keeps every control file it writes (up to 1 MiB) as a raw record in
// packs of control records; a mirror fetches the control files it needs
// from there, many per request, instead of one request each (828 requests
// on go1.22.12 -> go1.24.5: 0.09 s of the client's CPU and 0.05 s of
// nginx's, on the path to the scan). A record is checked as a control
// file fetched by its path is (it parses, and describes the entry's
// file); one that does not, or that a pack does not deliver, is fetched by
// its path.

// controlPacked reports whether e's control file can come from a pack.
func controlPacked(e *treeindex.Entry) bool {
	p := e.ControlPack
	return p != nil && e.Control != "" && p.Encoding == treeindex.PackRaw && p.Length <= DefaultMaxControlSize
}

// controlBatches groups entries with a control record by pack, in offset
// order, into batches of at most packBatchFiles records and packBatchBytes
// bytes (see byPack). Entries whose records overlap one of the batch are
// returned apart, to be fetched by their paths.
func controlBatches(list []*treeindex.Entry) (batches [][]*treeindex.Entry, apart []*treeindex.Entry) {
	return byPack(slices.Clone(list), func(e *treeindex.Entry) *treeindex.PackRef { return e.ControlPack }, packBatchFiles)
}

// fetchControlBatch fetches the control records of one batch (one pack,
// in offset order) and completes the prefetch (in cs) of each that parses
// and describes its file. It returns the entries it did not complete.
func (m *mirrorRun) fetchControlBatch(ctx context.Context, batch []*treeindex.Entry, cs map[*treeindex.Entry]*ctlFetch) (failed []*treeindex.Entry) {
	return readRecords(ctx, m, batch, func(e *treeindex.Entry) *treeindex.PackRef { return e.ControlPack }, "control pack", "control files",
		func(e *treeindex.Entry, rec []byte) bool {
			m.src.payload.Add(int64(len(rec)))
			f, err := parseControl(e, rec) // keeps nothing of rec
			if err != nil {
				m.logf("%s: control record in pack %s: %v; fetching it by its path", e.Path, e.ControlPack.Name, err)
				return false
			}
			c := cs[e]
			c.f = f
			close(c.done)
			return true
		})
}
