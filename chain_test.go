package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// TestSyncHashChain checks a default sync (flushed, hash chain checked in
// parallel spans) of a file large enough for a hash chain: the result is
// the target, and a wrong state in the chain fails the sync with ErrVerify
// and leaves the existing output as it was.
func TestSyncHashChain(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewChaCha8([32]byte{42}))
	old := randomBytes(rng, 6<<20)
	target := mutate(rng, old, 2048, 40)
	f, err := Make(ctx, bytes.NewReader(target), MakeOptions{Filename: "t", Blocksize: 2048, Length: int64(len(target))})
	if err != nil {
		t.Fatal(err)
	}
	if f.SHA256Chain == nil || len(f.SHA256Chain.States) < 2 {
		t.Fatalf("a %d-byte target got no hash chain: %+v", len(target), f.SHA256Chain)
	}
	f = travel(t, f)
	dir := t.TempDir()
	out := filepath.Join(dir, "t")
	if err := os.WriteFile(out, old, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := Sync(ctx, SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, target) {
		t.Fatal("result differs from the target")
	}
	if sum.Reused == 0 || sum.Fetched == 0 {
		t.Errorf("reused %d, fetched %d: want both", sum.Reused, sum.Fetched)
	}

	// The same sync again from the old file, with a wrong chain state.
	if err := os.WriteFile(out, old, 0o644); err != nil {
		t.Fatal(err)
	}
	f.SHA256Chain.States[1][5] ^= 0x40
	_, err = Sync(ctx, SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("Sync with a wrong chain state: err = %v, want ErrVerify", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
		t.Fatal("existing output changed by a failed verification")
	}
}
