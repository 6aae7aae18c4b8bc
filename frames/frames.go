package frames

import (
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// Encodings of frames.
const (
	// LZ4 is the LZ4 block format (not its frame format), read and
	// written with github.com/pierrec/lz4/v4: on executables it decodes
	// at 4 GB/s a core, 2.4 times as fast as S2's blocks, which it
	// matches in size (docs/trees.md, "Frames").
	LZ4 = "lz4"
)

// DefaultFrameSize is the frame size a Writer uses by default. On the
// changed files of three pairs of real releases (Go toolchains, SciPy),
// the bytes a client needs were within 3 % from 16 KiB to 128 KiB
// frames; 64 KiB was among the least (docs/trees.md, "Frames").
const DefaultFrameSize = 64 << 10

// ErrFrame reports a frame that does not decode to its length.
var ErrFrame = errors.New("frame does not decode")

// Layout describes the frames of one file.
type Layout struct {
	// Encoding is LZ4; a Source does not use frames of another.
	Encoding string
	// FrameSize is the decoded length of every frame but the last.
	FrameSize int64
	// Size is the file's length.
	Size int64
	// Lengths are the stored lengths of the frames. A frame stored in as
	// many bytes as it decodes to is stored as it is.
	Lengths []uint32
}

// Check reports whether l is consistent: a known encoding, one length per
// frame, each from 1 to its frame's decoded length.
func (l *Layout) Check() error {
	if l.Encoding != LZ4 {
		return fmt.Errorf("frames: unknown encoding %q", l.Encoding)
	}
	if l.FrameSize <= 0 || l.Size <= 0 || int64(len(l.Lengths)) != (l.Size+l.FrameSize-1)/l.FrameSize {
		return fmt.Errorf("frames: %d frames of %d bytes for a file of %d", len(l.Lengths), l.FrameSize, l.Size)
	}
	for i, n := range l.Lengths {
		if n == 0 || int64(n) > l.frameLen(i) {
			return fmt.Errorf("frames: frame %d stored in %d bytes", i, n)
		}
	}
	return nil
}

// frameLen returns the decoded length of frame i.
func (l *Layout) frameLen(i int) int64 {
	return min(l.FrameSize, l.Size-int64(i)*l.FrameSize)
}

// Decode decodes frame i, stored in src, into dst (which must hold the
// frame's decoded length, at most FrameSize) and returns the frame. It
// fails, wrapping ErrFrame, when src does not decode to the frame's length.
func (l *Layout) Decode(dst, src []byte, i int) ([]byte, error) {
	n := l.frameLen(i)
	dst = dst[:n]
	if int64(len(src)) == n {
		copy(dst, src)
		return dst, nil
	}
	d, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return nil, fmt.Errorf("%w: frame %d: %w", ErrFrame, i, err)
	}
	if int64(d) != n {
		return nil, fmt.Errorf("%w: frame %d: %d bytes, not %d", ErrFrame, i, d, n)
	}
	return dst, nil
}

// Writer compresses what is written to it into frames, written to an
// underlying writer. Close writes the last frame; Lengths then describes
// them.
type Writer struct {
	w       io.Writer
	c       lz4.Compressor
	size    int64
	buf     []byte // the frame being filled
	enc     []byte
	lengths []uint32
	stored  int64
	err     error
}

// NewWriter returns a Writer of LZ4 frames of frameSize bytes (0 means
// DefaultFrameSize) to w.
func NewWriter(w io.Writer, frameSize int64) *Writer {
	if frameSize <= 0 {
		frameSize = DefaultFrameSize
	}
	return &Writer{w: w, buf: make([]byte, 0, frameSize), enc: make([]byte, lz4.CompressBlockBound(int(frameSize)))}
}

// Write compresses p into frames, writing each frame once it is full.
func (w *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && w.err == nil {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p, n = p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			w.flush()
		}
	}
	return n, w.err
}

// flush writes the frame in buf: compressed, or as it is when that is
// not shorter.
func (w *Writer) flush() {
	if len(w.buf) == 0 || w.err != nil {
		return
	}
	out := w.buf
	if n, err := w.c.CompressBlock(w.buf, w.enc); err == nil && n > 0 && n < len(w.buf) {
		out = w.enc[:n]
	}
	if _, err := w.w.Write(out); err != nil {
		w.err = fmt.Errorf("frames: %w", err)
		return
	}
	w.size += int64(len(w.buf))
	w.lengths = append(w.lengths, uint32(len(out)))
	w.stored += int64(len(out))
	w.buf = w.buf[:0]
}

// Close writes the last frame. It does not close the underlying writer.
func (w *Writer) Close() error {
	w.flush()
	return w.err
}

// Layout returns the layout of the frames written, after Close.
func (w *Writer) Layout() Layout {
	return Layout{Encoding: LZ4, FrameSize: int64(cap(w.buf)), Size: w.size, Lengths: w.lengths}
}

// Stored returns the bytes written to the underlying writer so far.
func (w *Writer) Stored() int64 { return w.stored }

// Reader decodes a whole file from its frames read in order from r (the
// file of frames from its start): what a client fetches when it has none
// of the file.
type Reader struct {
	r       io.Reader
	l       Layout
	i       int // the next frame
	bufs    *Buffers
	buf     *[]byte // stored and decoded, until the end
	stored  []byte  // the next frame's stored bytes
	decoded []byte  // the current frame, decoded
	rest    []byte  // what of it Read has not returned
	err     error
}

// NewReader returns a Reader of the file whose frames, described by l,
// are read from r. Its buffers come from bufs (nil: its own), which gets
// them back when the Reader ends. A frame that does not decode to its
// length ends it with an error wrapping ErrFrame.
func NewReader(r io.Reader, l Layout, bufs *Buffers) (*Reader, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	if bufs == nil {
		bufs = new(Buffers)
	}
	n := min(l.FrameSize, l.Size)
	buf := bufs.get(2 * n)
	return &Reader{r: r, l: l, bufs: bufs, buf: buf, stored: (*buf)[:n], decoded: (*buf)[n:]}, nil
}

// end ends the Reader with err and hands its buffers back.
func (fr *Reader) end(err error) error {
	fr.err = err
	if fr.buf != nil {
		fr.bufs.put(fr.buf)
		fr.buf, fr.stored, fr.decoded = nil, nil, nil
	}
	return err
}

// Read returns the file's bytes in order.
func (fr *Reader) Read(p []byte) (int, error) {
	for len(fr.rest) == 0 {
		if fr.err != nil {
			return 0, fr.err
		}
		if fr.i == len(fr.l.Lengths) {
			return 0, fr.end(io.EOF)
		}
		src := fr.stored[:fr.l.Lengths[fr.i]]
		if _, err := io.ReadFull(fr.r, src); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fr.end(fmt.Errorf("frames: frame %d: %w", fr.i, err))
		}
		out, err := fr.l.Decode(fr.decoded, src, fr.i)
		if err != nil {
			return 0, fr.end(err)
		}
		fr.rest = out
		fr.i++
	}
	n := copy(p, fr.rest)
	fr.rest = fr.rest[n:]
	return n, nil
}

// Stored returns the bytes the frames take: what a Reader reads.
func (l *Layout) Stored() int64 {
	var n int64
	for _, k := range l.Lengths {
		n += int64(k)
	}
	return n
}
