package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/internal/writeback"
)

// diskFloorChunk is the size of each write of WriteDurable. Measured on
// the reference pair (225 MB, ext4 on a virtio disk, 2 December 2026,
// load 0.5–3.8, seconds, DiskHints without the background flushes): 1 MiB
// writes 0.41–0.49 over ten runs, 4 MiB 0.28–0.81 over thirteen, 256 KiB
// 0.44–0.76 and 16 MiB 0.68–1.12 over four.
const diskFloorChunk = 1 << 20

// diskFloorEvery is how often WriteDurable flushes in the background.
const diskFloorEvery = 8 << 20

// DiskMethod is a way of writing a file and getting it onto the disk, for
// WriteDurable. Which is fastest depends on the disk and on what else
// the machine is writing, so the disk floor tries each (DiskMethods) and
// keeps the fastest.
type DiskMethod string

const (
	// DiskHints reserves the file's blocks (osfile.Preallocate:
	// fallocate on Linux), writes 1 MiB at a time in order, starts the
	// writeback of each write as soon as it is made (writeback.Start:
	// sync_file_range on Linux) and flushes in the background every
	// 8 MiB (writeback.Every), then flushes (osfile.Sync). On a quiet
	// machine the fastest measured: 0.30–0.47 s for the reference
	// pair's 225 MB (ext4 on a virtio disk, 2 December 2026), against
	// 0.34–0.53 without the background flushes, 0.32–1.03 without the
	// reservation, 0.46–0.95 waiting for each write's writeback two writes
	// later, and 0.33–1.19 for O_DIRECT writes of 1–16 MiB with 1–8 in
	// flight (dropped: no better, and not every file system takes it).
	DiskHints DiskMethod = "hints"
	// DiskFlushes is DiskHints without the per-write hints: background
	// flushes every 8 MiB only, as zsyncpipe's sync gets its result onto
	// the disk. 0.30–0.56 s in the same runs.
	DiskFlushes DiskMethod = "flushes"
	// DiskPlain reserves the blocks, writes, and flushes once at the end,
	// as `dd conv=fdatasync` does. 0.48–0.90 s in the same runs.
	DiskPlain DiskMethod = "plain"
)

// DiskMethods returns every DiskMethod, the one measured fastest first.
func DiskMethods() []DiskMethod { return []DiskMethod{DiskHints, DiskFlushes, DiskPlain} }

// WriteDurable writes the size bytes of src into a new file at path and
// flushes it to disk by method, doing nothing else: no hashing, no checks.
// The fastest of the methods is the disk floor: the least time found for
// leaving those bytes durably in a new file on that file system, so that
// zsync's time divided by it is the most a tool that flushes its result
// can be faster than zsync there. Where the system has no call to start
// writeback or to reserve blocks, every method is plain writes and a
// flush.
//
// A file at path is replaced. ctx is checked between writes.
func WriteDurable(ctx context.Context, path string, src io.ReaderAt, size int64, method DiskMethod) (err error) {
	var hints, flushes bool
	switch method {
	case DiskHints:
		hints, flushes = true, true
	case DiskFlushes:
		flushes = true
	case DiskPlain:
	default:
		return fmt.Errorf("bench: disk floor: method %q: %w", method, ErrOptions)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("bench: disk floor: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("bench: disk floor: %w", cerr)
		}
	}()
	osfile.Preallocate(f, size)
	var wb *writeback.Every
	if flushes {
		wb = writeback.NewEvery(f, diskFloorEvery)
		defer wb.Close() // after an error; a second Close does nothing
	}
	buf := make([]byte, min(int64(diskFloorChunk), max(size, 1)))
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bench: disk floor: %w", err)
		}
		n, rerr := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n == 0 {
			if rerr == nil || errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("bench: disk floor: read at %d: %w", off, rerr)
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("bench: disk floor: %w", err)
		}
		if hints {
			_ = writeback.Start(f, off, int64(n)) // a hint: its failure is no error
		}
		if wb != nil {
			wb.Wrote(int64(n))
		}
		off += int64(n)
	}
	if wb != nil {
		if err := wb.Close(); err != nil {
			return fmt.Errorf("bench: disk floor: %w", err)
		}
	}
	if err := osfile.Sync(f); err != nil {
		return fmt.Errorf("bench: disk floor: %w", err)
	}
	return nil
}

// diskFloor times WriteDurable of the file at src into a new file at dst
// by method, and removes dst afterwards.
func diskFloor(ctx context.Context, src, dst string, method DiskMethod) (time.Duration, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("bench: disk floor: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, fmt.Errorf("bench: disk floor: %w", err)
	}
	defer os.Remove(dst)
	start := time.Now()
	if err := WriteDurable(ctx, dst, in, fi.Size(), method); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
