package zsyncpipe

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/frames"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Compressed frames (docs/trees.md, "Frames"): the publisher also keeps
// each file with a control file in frames of 64 KiB compressed each on
// its own (Entry.Frames). A rebuild reads the blocks it lacks through a
// frames.Source, which takes a frame instead of the blocks within it when
// the frame is shorter than they are: on a rebuilt binary, whose changes
// spread over most of its frames, that is about half the bytes. What a
// frame decodes to is checked as any fetched block is (the file's
// SHA-256, and the blocks' checksums when that fails); frames that fail
// leave the blocks to the file itself.

// usableFrames returns the layout of j's frames, and whether this client
// uses them: frames it knows the encoding of, that are consistent, and,
// once j's control file is in, whose frames are whole runs of its blocks.
func (m *mirrorRun) usableFrames(j *fileJob) (frames.Layout, bool) {
	f := j.e.Frames
	if f == nil || m.opts.NoFrames {
		return frames.Layout{}, false
	}
	l := frames.Layout{Encoding: f.Encoding, FrameSize: f.FrameSize, Size: j.e.Size, Lengths: f.Lengths}
	if l.Check() != nil || j.f != nil && f.FrameSize%int64(j.f.Blocksize) != 0 {
		return frames.Layout{}, false
	}
	return l, true
}

// framed returns a source of j's file that takes frames where they are
// shorter, and the function that releases it; nil when j has no frames
// this client can use: src reads the file itself.
func (m *mirrorRun) framed(ctx context.Context, j *fileJob, src source.RangeSource) (*frames.Source, func()) {
	l, ok := m.usableFrames(j)
	if !ok || j.f == nil {
		return nil, nil
	}
	fsrc, release, err := m.src.ranges(ctx, treeindex.FramesPath(j.e.Frames.Name), -1)
	if err != nil {
		m.logf("%s: frames: %v; fetching its blocks as they are", j.e.Path, err)
		return nil, nil
	}
	s, err := frames.NewSource(src, fsrc, l, &m.frameBufs)
	if err != nil {
		release()
		m.logf("%s: %v; fetching its blocks as they are", j.e.Path, err)
		return nil, nil
	}
	return s, release
}

// fetchFramed fetches a job's whole file as its compressed frames, in one
// range, decoding and verifying it as it goes, and reports whether it
// did; on false (no frames, or frames that failed, which it notes) the
// caller fetches the file itself.
func (m *mirrorRun) fetchFramed(ctx context.Context, j *fileJob) bool {
	l, ok := m.usableFrames(j)
	if !ok {
		return false
	}
	src, done, err := m.src.ranges(ctx, treeindex.FramesPath(j.e.Frames.Name), -1)
	if err != nil {
		m.logf("%s: frames: %v; fetching it as it is", j.e.Path, err)
		return false
	}
	defer done()
	var n atomic.Int64
	var werr error
	err = src.ReadRanges(ctx, []source.Range{{Start: 0, End: l.Stored()}}, func(r source.Range, data io.Reader) error {
		fr, err := frames.NewReader(data, l, &m.frameBufs)
		if err != nil {
			return err
		}
		werr = m.writeVerified(j, &countingReader{r: fr, n: &n})
		return werr
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		if ctx.Err() == nil {
			m.logf("%s: frames: %v; fetching it as it is", j.e.Path, err)
		}
		return false
	}
	m.fetched.Add(n.Load())
	m.frames.Add(int64(len(l.Lengths)))
	m.framesDecoded.Add(j.e.Size)
	return true
}

// framesSaving returns about how many fewer bytes fetching missing, ranges
// of j's file, takes through its frames (a dry run's estimate; see
// frames.Layout.Cost): 0 without frames this client uses.
func (m *mirrorRun) framesSaving(j *fileJob, missing []source.Range) int64 {
	l, ok := m.usableFrames(j)
	if !ok || len(missing) == 0 {
		return 0
	}
	var raw int64
	for _, r := range missing {
		raw += r.Len() + frames.RangeOverhead
	}
	return max(0, raw-l.Cost(missing))
}
