package stages

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// Patcher writes blocks of the target into an output with positioned
// writes (easy_patch). Blocks may arrive in any order, in partial batches,
// over any number of calls, and more than once. It is safe for concurrent
// use.
type Patcher struct {
	w       io.WriterAt
	bs      int64
	length  int64
	blocks  int64
	done    []atomic.Uint64 // bit per block
	count   atomic.Int64
	written atomic.Int64
	changed chan struct{} // a token after each change, for watchers
	zeroed  bool          // the output reads as zeros where nothing was written
	sized   bool          // the output has the target's length already
	onWrite func(n int64)
}

// NewPatcher returns a Patcher writing the target described by h to w.
func NewPatcher(w io.WriterAt, h *control.Header) *Patcher {
	n := h.Blocks()
	return &Patcher{
		w:       w,
		bs:      int64(h.Blocksize),
		length:  h.Length,
		blocks:  n,
		done:    make([]atomic.Uint64, (n+63)/64),
		changed: make(chan struct{}, 1),
	}
}

// AssumeZeroed tells the patcher that the output reads as zeros wherever
// nothing has been written to it yet — a new file truncated to the target's
// length, say. Blocks of zeros are then marked written without being
// written: they stay holes of a sparse file, and a target made mostly of
// zeros (a disk image) costs no writes for them. Never use it on an output
// that may hold other data.
func (pt *Patcher) AssumeZeroed() { pt.zeroed = true }

// Sized tells the patcher that the output has the target's length
// already (it was truncated to it, say): Finish then does not set it
// again. The patcher's writes never go past the target's length.
func (pt *Patcher) Sized() { pt.sized = true }

// OnWrite sets a function called with the length of every write the
// patcher makes, from the writing goroutine, e.g. to start the writeback of
// the output early (package internal/writeback). Set it before the first
// write.
func (pt *Patcher) OnWrite(fn func(n int64)) { pt.onWrite = fn }

// Changed returns a channel that receives a token after blocks have been
// written or marked done: a way to wait for progress without polling.
func (pt *Patcher) Changed() <-chan struct{} { return pt.changed }

// Write writes every block of the batch at its place in the target,
// clipped to the target's length.
func (pt *Patcher) Write(b Batch) error {
	for _, blk := range b {
		if err := pt.WriteBlock(blk); err != nil {
			return err
		}
	}
	return nil
}

// WriteBlock writes one run of blocks at its place in the target.
func (pt *Patcher) WriteBlock(blk Block) error {
	if blk.Index < 0 || blk.Index >= pt.blocks {
		return fmt.Errorf("patch: block %d is outside the target's %d blocks", blk.Index, pt.blocks)
	}
	off := blk.Index * pt.bs
	data := blk.Data
	if rest := pt.length - off; int64(len(data)) > rest {
		data = data[:rest]
	}
	count := (int64(len(data)) + pt.bs - 1) / pt.bs
	if count == 0 {
		return nil
	}
	if int64(len(data))%pt.bs != 0 && off+int64(len(data)) != pt.length {
		return fmt.Errorf("patch: run at block %d has %d bytes, not whole blocks", blk.Index, len(data))
	}
	if !pt.zeroed || !allZero(data) {
		if _, err := pt.w.WriteAt(data, off); err != nil {
			return fmt.Errorf("patch: write block %d: %w", blk.Index, err)
		}
		if pt.onWrite != nil {
			pt.onWrite(int64(len(data)))
		}
	}
	pt.written.Add(int64(len(data)))
	for i := blk.Index; i < blk.Index+count; i++ {
		pt.markDone(i)
	}
	pt.signal()
	return nil
}

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] != 0 {
			return false
		}
	}
	return true
}

// MarkDone records that block i is in place without writing it, e.g. when
// an earlier run wrote it.
func (pt *Patcher) MarkDone(i int64) {
	pt.markDone(i)
	pt.signal()
}

// Forget records that the blocks of the ranges (whole blocks of the
// target) are not in place after all: they failed their check and are to
// be written again.
func (pt *Patcher) Forget(ranges []source.Range) {
	for _, r := range ranges {
		for i := r.Start / pt.bs; i*pt.bs < r.End && i < pt.blocks; i++ {
			bit := uint64(1) << (i & 63)
			if old := pt.done[i>>6].And(^bit); old&bit != 0 {
				pt.count.Add(-1)
			}
		}
	}
}

func (pt *Patcher) markDone(i int64) {
	bit := uint64(1) << (i & 63)
	if old := pt.done[i>>6].Or(bit); old&bit == 0 {
		pt.count.Add(1)
	}
}

func (pt *Patcher) signal() {
	select {
	case pt.changed <- struct{}{}:
	default:
	}
}

// Done reports whether block i has been written.
func (pt *Patcher) Done(i int64) bool { return pt.done[i>>6].Load()&(1<<(i&63)) != 0 }

// Complete reports whether every block has been written.
func (pt *Patcher) Complete() bool { return pt.count.Load() == pt.blocks }

// Written returns the bytes written so far, counting rewrites.
func (pt *Patcher) Written() int64 { return pt.written.Load() }

// Missing returns the byte ranges of blocks not yet written, as maximal
// ranges clipped to the target's length.
func (pt *Patcher) Missing() []source.Range {
	var out []source.Range
	for i := int64(0); i < pt.blocks; i++ {
		if pt.Done(i) {
			continue
		}
		start, end := i*pt.bs, min((i+1)*pt.bs, pt.length)
		if k := len(out) - 1; k >= 0 && out[k].End == start {
			out[k].End = end
		} else {
			out = append(out, source.Range{Start: start, End: end})
		}
	}
	return out
}

// CopyFromSeeds writes the plan's copies, reading the blocks from the
// seeds; it is easy_patch's "seed file" input.
func (pt *Patcher) CopyFromSeeds(ctx context.Context, plan *Plan, seeds []Seed) error {
	const maxRun = 1 << 20
	buf := make([]byte, 0, max(maxRun, pt.bs))
	for _, c := range plan.Copies {
		if c.Seed < 0 || c.Seed >= len(seeds) {
			return fmt.Errorf("patch: plan names seed %d of %d", c.Seed, len(seeds))
		}
		s := seeds[c.Seed]
		for done := int64(0); done < c.Count; {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := min(c.Count-done, max(maxRun/pt.bs, 1))
			buf = buf[:k*pt.bs]
			off := c.Offset + done*pt.bs
			n, err := s.R.ReadAt(buf, off)
			if n < len(buf) {
				// A match may run past the seed's end into zsync's zero
				// padding; anything short of that is an error.
				if err != nil && !errors.Is(err, io.EOF) || off+int64(n) < s.Size {
					if err == nil {
						err = io.ErrUnexpectedEOF
					}
					return fmt.Errorf("patch: read seed %s at %d: %w", s.Name, off, err)
				}
				clear(buf[n:])
			}
			if err := pt.WriteBlock(Block{Index: c.Index + done, Data: buf}); err != nil {
				return err
			}
			done += k
		}
	}
	return nil
}

// Truncater is implemented by outputs whose length can be set, such as
// *os.File.
type Truncater interface {
	Truncate(size int64) error
}

// Finish checks that every block was written and, when the output is a
// Truncater and not known to have the target's length (Sized), sets its
// length to the target's.
func (pt *Patcher) Finish() error {
	if !pt.Complete() {
		return fmt.Errorf("patch: %d of %d blocks were never written", pt.blocks-pt.count.Load(), pt.blocks)
	}
	if t, ok := pt.w.(Truncater); ok && !pt.sized {
		if err := t.Truncate(pt.length); err != nil {
			return fmt.Errorf("patch: truncate output to %d bytes: %w", pt.length, err)
		}
	}
	return nil
}

// PatchStage adds the patcher to a pipeline as a sink of batches.
func PatchStage(p *pipeline.Pipeline, in *pipeline.Stream[Batch], pt *Patcher) {
	pipeline.Sink(p, "patch", in, func(ctx context.Context, b Batch) error {
		return pt.Write(b)
	})
}
