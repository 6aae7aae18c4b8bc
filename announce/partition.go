package announce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/sourcegraph/conc/pool"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/partition"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// partitionOf returns the manifest of the partitioned file the message
// announces, and the number of the partition announced. The message was
// validated: its size and identity are the manifest's for that
// partition.
func partitionOf(m *v03.Message, l v03.Limits) (*partition.Manifest, int, error) {
	b := m.Blocks
	if b.Method != v03.Inplace {
		return nil, 0, fmt.Errorf("partition method %q: %w", b.Method, ErrUnsupported)
	}
	if m.Identity == nil || v03.NewHash(m.Identity.Method) == nil {
		return nil, 0, fmt.Errorf("partitioned file without a digest identity: %w", ErrUnsupported)
	}
	man := &partition.Manifest{Size: b.Size, Method: m.Identity.Method, Parts: make([]partition.Part, len(b.Manifest))}
	for i, p := range b.Manifest {
		man.Parts[i] = partition.Part{Size: p.Size, Identity: p.Identity}
	}
	max := l.MaxSize
	if max <= 0 {
		max = v03.DefaultMaxSize
	}
	if err := man.Check(max); err != nil {
		return nil, 0, fmt.Errorf("blocks: %w: %w", err, v03.ErrInvalid)
	}
	return man, int(b.Number), nil
}

// lockKey is what handle serializes on: the path, or for a partitioned
// file the path and the partition, so that one process works on several
// partitions of a file at once.
func lockKey(m *v03.Message, rel string) string {
	if m.Blocks == nil {
		return rel
	}
	return rel + "\x00" + strconv.FormatInt(m.Blocks.Number, 10)
}

// partitioned syncs the announced partition of a partitioned file into
// the file's shared partial file (package partition) and, when it is the
// last one in, verifies the whole file and puts it in place.
func (s *Subscriber) partitioned(ctx context.Context, m *v03.Message, target string) (Result, error) {
	man, n, err := partitionOf(m, s.opts.Limits)
	if err != nil {
		return Result{}, err
	}
	if m.Zsync == nil {
		// Not zsyncpipe's: perhaps sr3's, whose partition identities
		// reach past the partitions (see partition.Manifest.BufSize).
		man.BufSize = v03.SR3BufSize
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return Result{}, err
	}
	v, err := partition.New(target, partition.Options{NoFsync: s.opts.NoFsync}).Begin(ctx, man, stamp(m))
	if errors.Is(err, partition.ErrDone) {
		return Result{Action: Unchanged}, nil
	}
	if errors.Is(err, partition.ErrSuperseded) {
		return Result{Action: Older}, nil
	}
	if err != nil {
		return Result{}, err
	}
	r := Result{Action: Unchanged}
	c, err := v.Claim(ctx, n)
	switch {
	case errors.Is(err, partition.ErrDone):
	case errors.Is(err, partition.ErrSuperseded):
		return Result{Action: Older}, nil
	case err != nil:
		return Result{}, err
	default:
		r, err = s.fillPartition(ctx, m, man, n, c, target)
		if err == nil {
			_, err = c.Commit(ctx)
		}
		c.Release()
		if errors.Is(err, partition.ErrSuperseded) {
			return Result{Action: Older}, nil
		}
		if err != nil {
			return r, err
		}
	}
	complete, err := v.Local(ctx)
	if errors.Is(err, partition.ErrSuperseded) || errors.Is(err, partition.ErrDone) {
		return r, nil
	}
	if err != nil || !complete {
		return r, err
	}
	err = v.Place(ctx, func(path string) error { return s.placePartitioned(m, path, target) })
	switch {
	case errors.Is(err, partition.ErrSuperseded) || errors.Is(err, partition.ErrDone):
		return r, nil
	case errors.Is(err, partition.ErrMismatch):
		return r, fmt.Errorf("%w: %w", err, ErrMismatch)
	case err != nil:
		return r, err
	}
	s.applied(target, m)
	r.Action = Assembled
	return r, nil
}

// placePartitioned gives the verified whole file the message's mode and
// mtime and renames it over target.
func (s *Subscriber) placePartitioned(m *v03.Message, path, target string) error {
	if err := setModeTime(m, path); err != nil {
		return err
	}
	if err := os.Rename(path, target); err != nil {
		return err
	}
	s.forget(target)
	return nil
}

// fillPartition writes the claimed partition: copied from the target when
// it holds it at the same place; delta-synced with the message's control
// file (the partition's) against the target around that place and what
// the shared file holds of it already; or fetched whole as byte ranges
// of the file, several at once (sr3's own messages carry no control file).
func (s *Subscriber) fillPartition(ctx context.Context, m *v03.Message, man *partition.Manifest, n int, c *partition.Claim, target string) (Result, error) {
	if c.Local && c.CopyTarget() == nil {
		return Result{Action: PartitionIn, Reused: c.Size()}, nil
	}
	if m.Zsync == nil && man.BufSize > 0 {
		// sr3's identity of the partition may cover the rest of the
		// file: the target may still hold it.
		if t, fi, err := osfile.OpenRegular(ctx, target); err == nil {
			ok, _ := man.Matches(n, t, fi.Size())
			t.Close()
			if ok && c.CopyTarget() == nil {
				return Result{Action: PartitionIn, Reused: c.Size()}, nil
			}
		}
	}
	u, err := m.FileURL()
	if err != nil {
		return Result{}, err
	}
	src, closeSrc, err := s.rangeSource(u, c.Offset())
	if err != nil {
		return Result{}, err
	}
	defer closeSrc()
	if m.Zsync == nil {
		fetched, err := fetchWhole(ctx, src, c.Writer(), c.Size())
		if err != nil {
			return Result{}, fmt.Errorf("fetch partition: %w", err)
		}
		return Result{Action: PartitionIn, Fetched: fetched}, nil
	}
	cf, ctlBytes, err := s.controlFile(ctx, m)
	if err != nil {
		return Result{}, err
	}
	if cf.Length != c.Size() {
		return Result{}, fmt.Errorf("control file for %d bytes, partition of %d: %w", cf.Length, c.Size(), ErrMismatch)
	}
	var seeds []stages.Seed
	if !c.Fresh {
		// What an earlier claim (a subscriber killed on the way) wrote.
		seeds = append(seeds, stages.Seed{Name: "partial", R: c.Reader(), Size: c.Size()})
	}
	if t, fi, err := osfile.OpenRegular(ctx, target); err == nil {
		defer t.Close()
		// The old version around the partition's place: its data,
		// shifted by up to a partition either way.
		lo, hi := max(c.Offset()-c.Size(), 0), min(c.Offset()+2*c.Size(), fi.Size())
		if hi > lo {
			seeds = append(seeds, stages.Seed{Name: target, R: io.NewSectionReader(t, lo, hi-lo), Size: hi - lo})
		}
	}
	pt := stages.NewPatcher(c.Writer(), &cf.Header)
	matches, err := stages.Delta(ctx, cf, seeds, stages.DeltaOptions{Workers: 1, OnBlocks: pt.WriteBlock})
	if err != nil {
		return Result{}, fmt.Errorf("partition delta: %w", err)
	}
	plan := stages.Blueprint(&cf.Header, matches)
	var fetched atomic.Int64
	err = stages.Fetch(ctx, cf, src, plan.Missing, stages.FetchOptions{}, func(b stages.Batch) error {
		fetched.Add(b.Size())
		return pt.Write(b)
	})
	if err == nil {
		err = pt.Finish()
	}
	if err != nil {
		return Result{}, fmt.Errorf("partition fetch: %w", err)
	}
	return Result{Action: PartitionIn, Fetched: min(fetched.Load(), plan.MissingBytes) + ctlBytes, Reused: plan.Reused}, nil
}

// wholePiece is the bytes of one request of fetchWhole: the fetch stage's
// bytes per call (stages.FetchLimits.CallBytes).
const wholePiece = 4 << 20

// fetchWhole copies the first size bytes of src to w in pieces of
// wholePiece bytes, stages.DefaultConcurrency requests at once as the
// fetch stage makes them, so that a large partition is not one request
// on one connection. It returns the bytes copied.
func fetchWhole(ctx context.Context, src source.RangeSource, w io.WriterAt, size int64) (int64, error) {
	var fetched atomic.Int64
	p := pool.New().WithContext(ctx).WithCancelOnError().WithFirstError().WithMaxGoroutines(stages.DefaultConcurrency)
	for off := int64(0); off < size; off += wholePiece {
		piece := []source.Range{{Start: off, End: min(off+wholePiece, size)}}
		p.Go(func(ctx context.Context) error {
			return src.ReadRanges(ctx, piece, func(r source.Range, data io.Reader) error {
				n, err := io.Copy(io.NewOffsetWriter(w, r.Start), data)
				fetched.Add(n)
				return err
			})
		})
	}
	err := p.Wait()
	return fetched.Load(), err
}

// rangeSource returns a source of the file at u whose offsets start at
// off: http(s) through package httpsource, file: from disk.
func (s *Subscriber) rangeSource(u *url.URL, off int64) (source.RangeSource, func(), error) {
	switch u.Scheme {
	case "http", "https":
		src, err := httpsource.New(u.String(), s.opts.HTTP)
		if err != nil {
			return nil, nil, err
		}
		return shifted{src, off}, src.CloseIdleConnections, nil
	case "file":
		// The open does not block: a FIFO there is refused at once.
		f, _, err := osfile.OpenRegular(context.Background(), filepath.FromSlash(u.Path))
		if err != nil {
			return nil, nil, err
		}
		return shifted{source.ReaderAt{R: f}, off}, func() { f.Close() }, nil
	}
	return nil, nil, fmt.Errorf("URL scheme %q: %w", u.Scheme, ErrUnsupported)
}

// shifted reads the ranges of a source off bytes further on.
type shifted struct {
	src source.RangeSource
	off int64
}

func (s shifted) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	out := make([]source.Range, len(ranges))
	for i, r := range ranges {
		out[i] = source.Range{Start: r.Start + s.off, End: r.End + s.off}
	}
	return s.src.ReadRanges(ctx, out, func(r source.Range, data io.Reader) error {
		return fn(source.Range{Start: r.Start - s.off, End: r.End - s.off}, data)
	})
}
