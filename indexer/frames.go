package indexer

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zsyncpipe/zsyncpipe/frames"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Compressed frames (Entry.Frames; docs/trees.md, "Frames"): the
// publisher writes every file that has a control file and is not packed
// whole (larger than Options.PackMax) a second time, cut
// into frames of frames.DefaultFrameSize compressed each on its own with
// LZ4, into a file of its own below treeindex.FramesDir, named by the hash
// of its content. A client rebuilding the file fetches a compressed frame
// instead of the blocks it lacks in it when that is shorter: on software
// releases the frames are about half the file, and the changed parts of a
// rebuilt binary are most of their frames. Files of frames are removed,
// like packs, PackGrace after the last index that named them.
//
// A file whose frames are not at most framesMax of it (data that does not
// compress) gets none. Files that grow by appending (Options.AppendOnly)
// get none either: they are read from their old end.

// framesMax is the largest share of a file its frames may take: 9/10.
const framesMaxNum, framesMaxDen = 9, 10

// retiredFramesPath holds, as retiredPath does for packs, when each file
// of frames that no entry refers to was last referred to.
const retiredFramesPath = treeindex.Dir + "/" + treeindex.Dir + "/retired-frames.json"

// wantsFrames reports whether a file of size bytes whose control file is
// want gets frames: not one packed whole (Options.PackMax), which a
// client takes compressed from its pack record when that is shorter
// than the blocks it lacks. Frames of those took 1,079 of the 1,160
// files of frames of go1.22.12 and 16 of its 94 MiB, and saved nothing
// on the real pairs (docs/trees-measurements.md, "Where it stands:
// twenty-fourth session").
func (px *pass) wantsFrames(want string, size int64) bool {
	return want != "" && !px.opts.NoPacks && !px.opts.NoFrames && !px.opts.AppendOnly && size > px.opts.packMax()
}

// frameSize returns the frame size for a file of size bytes:
// frames.DefaultFrameSize, or the power of two that keeps the frames
// within treeindex.MaxFrames; 0 (no frames) above
// treeindex.MaxFrames·treeindex.MaxFrameSize.
func frameSize(size int64) int64 {
	fs := int64(frames.DefaultFrameSize)
	for fs*treeindex.MaxFrames < size {
		fs *= 2
	}
	if fs > treeindex.MaxFrameSize {
		return 0
	}
	return fs
}

// framesExist reports whether f's file of frames is there, of the length
// its frames add up to.
func (px *pass) framesExist(f *treeindex.Frames) bool {
	if f == nil {
		return true
	}
	var n int64
	for _, l := range f.Lengths {
		n += int64(l)
	}
	fi, err := os.Lstat(filepath.Join(px.dir, filepath.FromSlash(treeindex.FramesPath(f.Name))))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == n
}

// frameWriter writes the frames of one file into a temporary file of
// treeindex.FramesDir, hashing them for their name.
type frameWriter struct {
	px   *pass
	tmp  *os.File
	bw   *bufio.Writer
	sum  hash.Hash
	w    *frames.Writer
	size int64 // the file's
}

// newFrameWriter starts the frames of a file of size bytes; nil when it
// is too large to have frames.
func (px *pass) newFrameWriter(size int64) (*frameWriter, error) {
	fs := frameSize(size)
	if fs == 0 {
		return nil, nil
	}
	dir := filepath.Join(px.dir, filepath.FromSlash(treeindex.FramesDir))
	if err := px.mkdirAll(dir); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "frames-*"+tmpSuffix)
	if err == nil {
		err = tmp.Chmod(0o644) // as the packs: readable by the web server
	}
	if err != nil {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
		return nil, fmt.Errorf("frames: %w", err)
	}
	fw := &frameWriter{px: px, tmp: tmp, bw: bufio.NewWriterSize(tmp, 256<<10), sum: sha256.New(), size: size}
	fw.w = frames.NewWriter(io.MultiWriter(fw.bw, fw.sum), fs)
	return fw, nil
}

// Write compresses p into the frames.
func (fw *frameWriter) Write(p []byte) (int, error) { return fw.w.Write(p) }

// finish completes the frames and puts their file in place, returning
// them; nil (and no file) when they take more than framesMax of the
// file.
func (fw *frameWriter) finish() (*treeindex.Frames, error) {
	defer fw.abort()
	if err := fw.w.Close(); err != nil {
		return nil, err
	}
	l := fw.w.Layout()
	if l.Size != fw.size || l.Size == 0 || fw.w.Stored()*framesMaxDen > fw.size*framesMaxNum {
		return nil, nil
	}
	if err := fw.bw.Flush(); err != nil {
		return nil, fmt.Errorf("frames: %w", err)
	}
	px := fw.px
	if px.batch {
		px.batched.Add(1) // flushed by the pass's syncfs, before the index names it
	} else if !px.opts.NoSync {
		if err := fw.tmp.Sync(); err != nil {
			return nil, fmt.Errorf("frames: %w", err)
		}
	}
	if err := fw.tmp.Close(); err != nil {
		return nil, fmt.Errorf("frames: %w", err)
	}
	name := hex.EncodeToString(fw.sum.Sum(nil)[:16])
	if err := os.Rename(fw.tmp.Name(), filepath.Join(px.dir, filepath.FromSlash(treeindex.FramesPath(name)))); err != nil {
		return nil, fmt.Errorf("frames: %w", err)
	}
	fw.tmp = nil
	px.framesWritten.Add(1)
	px.framesBytes.Add(fw.w.Stored())
	return &treeindex.Frames{Name: name, Encoding: l.Encoding, FrameSize: l.FrameSize, Lengths: l.Lengths}, nil
}

// abort removes the temporary file, unless finish put it in place.
func (fw *frameWriter) abort() {
	if fw.tmp != nil {
		fw.tmp.Close()
		if err := os.Remove(fw.tmp.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fw.px.warn(fmt.Errorf("index: frames: %w", err))
		}
		fw.tmp = nil
	}
}
