//go:build !race

// The race detector makes scanning 4 GiB of zeros take minutes (every byte
// goes through instrumented code), so this test runs only without it.

package zsyncpipe

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A target beyond 4 GiB (offsets past 32 bits) syncs from a sparse seed,
// all of it reused. The target is all zeros, so its control file is built
// from one block instead of reading the file.
func TestSyncSparseBeyond4GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 4 GiB twice")
	}
	const length = 4<<30 + 12345
	const bs = control.MaxBlocksize
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	fh, err := os.Create(seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(length); err != nil {
		t.Skipf("no sparse 4 GiB file here: %v", err)
	}
	fh.Close()

	zero := make([]byte, bs)
	hl := control.HashLengths{SeqMatches: 2, RsumBytes: 4, StrongBytes: 16}
	n := (length + bs - 1) / bs
	c := control.Checksums{RsumBytes: hl.RsumBytes, StrongBytes: hl.StrongBytes}
	zeroMD5 := md5.Sum(zero) // the last, short block is hashed zero-padded too
	zeroRsum := rollsum.Block(zero).Packed() & control.RsumMask(hl.RsumBytes)
	for range n {
		c.Rsum = append(c.Rsum, zeroRsum)
		c.Strong = append(c.Strong, zeroMD5[:]...)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, zeros{}, length); err != nil {
		t.Fatal(err)
	}
	f := &control.File{Header: control.Header{Version: "0.8.0", Filename: "big", Blocksize: bs, Length: length,
		HashLengths: hl, StrongAlgorithm: strong.MD5, SHA256: h.Sum(nil), MTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, Checksums: c}
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	if f, err = control.Read(&buf); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "big")
	sum, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Seeds: []string{seed}, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reused != length || sum.Fetched != 0 {
		t.Errorf("reused %d, fetched %d; want %d and 0", sum.Reused, sum.Fetched, int64(length))
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size() != length {
		t.Fatalf("output: %v, size %d", err, fi.Size())
	}
	netCheckDir(t, dir, "big", "seed")
}
