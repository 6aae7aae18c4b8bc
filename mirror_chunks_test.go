package zsyncpipe

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The chunk checksums' file gives back what was kept; a file cut
// anywhere, or with another beginning, gives nothing, and no panic.
func TestChunksFile(t *testing.T) {
	meta := t.TempDir()
	want := map[string][]uint32{}
	for i := range 5 {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		s := make([]uint32, 1+i*300)
		for k := range s {
			s[k] = uint32(i*7919 + k*104729)
		}
		want[hex.EncodeToString(sum[:])] = s
	}
	data := encodeChunks(want)
	p := filepath.Join(meta, chunksFile)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loadChunks(meta); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %d contents, want %d as kept", len(got), len(want))
	}
	for _, cut := range []int{0, 5, len(chunksMagic), len(chunksMagic) + 31, len(chunksMagic) + 33, len(data) - 1} {
		if err := os.WriteFile(p, data[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if got := loadChunks(meta); len(got) != 0 {
			t.Errorf("cut at %d of %d bytes: loaded %d contents, want none", cut, len(data), len(got))
		}
	}
	bad := append([]byte("zsyncpipe chunk sums 2\n"), data[len(chunksMagic):]...)
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loadChunks(meta); len(got) != 0 {
		t.Errorf("another version: loaded %d contents", len(got))
	}
	os.Remove(p)
	if got := loadChunks(meta); len(got) != 0 {
		t.Errorf("no file: loaded %d contents", len(got))
	}
}

// FuzzLoadChunks checks that no chunk checksums' file makes loadChunks
// panic or give checksums it does not hold.
func FuzzLoadChunks(f *testing.F) {
	f.Add(encodeChunks(map[string][]uint32{hex.EncodeToString(make([]byte, 32)): {1, 2, 3}}))
	f.Add([]byte(chunksMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		meta := t.TempDir()
		if err := os.WriteFile(filepath.Join(meta, chunksFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		for key, sums := range loadChunks(meta) {
			if len(key) != 64 || len(sums) == 0 || 4*len(sums) > len(data) {
				t.Fatalf("%q: %d sums from %d bytes", key, len(sums), len(data))
			}
		}
	})
}
