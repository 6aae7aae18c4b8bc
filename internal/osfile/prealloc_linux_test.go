package osfile

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestPreallocate(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 4 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if !Preallocate(f, size) {
		if os.Getenv("CI") != "" { // CI's machines have ext4 with room
			t.Fatal("Preallocate did not reserve 4 MiB")
		}
		t.Skip("the file system of the test's temporary directory has no fallocate or too little space")
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Sys().(*syscall.Stat_t).Blocks * 512; got < size {
		t.Errorf("%d bytes allocated after Preallocate(%d)", got, size)
	}
	if fi.Size() != size {
		t.Errorf("size %d, want %d", fi.Size(), size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, make([]byte, size)) {
		t.Error("preallocated blocks do not read as zeros")
	}
}

func TestPreallocateRefusesMostOfTheFreeSpace(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Preallocate(f, 1<<60) {
		t.Fatal("Preallocate reserved an exabyte")
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if n := fi.Sys().(*syscall.Stat_t).Blocks; n != 0 {
		t.Errorf("%d blocks allocated by a refused Preallocate", n)
	}
	if Preallocate(f, 0) {
		t.Error("Preallocate(0) reported a reservation")
	}
}
