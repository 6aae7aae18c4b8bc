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
// load 0.5–3.8, seconds): 1 MiB writes 0.41–0.49 over ten runs, 4 MiB
// 0.28–0.81 over thirteen, 256 KiB 0.44–0.76 and 16 MiB 0.68–1.12 over
// four.
const diskFloorChunk = 1 << 20

// diskFloorEvery is how often WriteDurable flushes in the background.
const diskFloorEvery = 8 << 20

// WriteDurable writes the size bytes of src into a new file at path and
// flushes it to disk, the fastest way found on Linux, doing nothing else:
// no hashing, no checks. It is the disk floor: the least time any tool
// needs to leave those bytes durably in a new file on that file system,
// so that zsync's time divided by it is the most a durable tool can be
// faster than zsync there.
//
// The file's blocks are reserved first (osfile.Preallocate: fallocate on
// Linux), the bytes are written in 1 MiB writes in order, the writeback
// of each write is started as soon as it is made (writeback.Start:
// sync_file_range on Linux), and every 8 MiB a background flush catches
// up (writeback.Every, as a sync does), so that the disk works while the
// rest is written; one flush (osfile.Sync) ends it. The alternatives,
// measured beside it on the reference pair (225 MB, ext4 on a virtio
// disk, 2 December 2026, load 0.5–6.5, seconds): this 0.30–0.47 over
// six runs; without the background flushes 0.34–0.53 over sixteen;
// background flushes without the per-write hints 0.30–0.56 (1 MiB
// writes) and 0.41–0.81 (4 MiB); without the reservation 0.32–1.03;
// plain writes and one flush at the end (what `dd conv=fdatasync` does)
// 0.48–0.90; a wait for each write's writeback two writes later
// 0.46–0.95; O_DIRECT into the reserved file, 4 MiB writes with 4 in
// flight 0.33–0.94, and 1–16 MiB with 1–8 in flight no better
// (0.47–1.19). Where the system has none of these calls, it is plain
// writes and a flush.
//
// A file at path is replaced. ctx is checked between writes.
func WriteDurable(ctx context.Context, path string, src io.ReaderAt, size int64) (err error) {
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
	wb := writeback.NewEvery(f, diskFloorEvery)
	defer wb.Close() // after an error; Close is idempotent
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
		_ = writeback.Start(f, off, int64(n)) // a hint: its failure is no error
		wb.Wrote(int64(n))
		off += int64(n)
	}
	if err := wb.Close(); err != nil {
		return fmt.Errorf("bench: disk floor: %w", err)
	}
	if err := osfile.Sync(f); err != nil {
		return fmt.Errorf("bench: disk floor: %w", err)
	}
	return nil
}

// diskFloor times WriteDurable of the file at src into a new file at
// dst, which it removes afterwards.
func diskFloor(ctx context.Context, src, dst string) (time.Duration, error) {
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
	if err := WriteDurable(ctx, dst, in, fi.Size()); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
