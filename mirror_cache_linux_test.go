package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages returns how many pages of the file at p are in the page
// cache, and how many it has.
func residentPages(t *testing.T, p string) (resident, pages int) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	ps := os.Getpagesize()
	vec := make([]byte, (len(mem)+ps-1)/ps)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}

// TestMirrorDropsScannedCache: once the scan has read them, the cached
// pages of the local files the new tree replaces or drops are freed (the
// files themselves stay until a verified file replaces them), so that the
// pages of the files the run writes next reuse them; the files the new
// tree keeps stay cached, also when the scan reads them at every offset.
func TestMirrorDropsScannedCache(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("scan-unchanged=%v", all), func(t *testing.T) { testDropsScannedCache(t, all) })
	}
}

func testDropsScannedCache(t *testing.T, scanUnchanged bool) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	const size = 512 << 10
	keep, gone, old := treeData(701, size), treeData(702, size), treeData(703, size)
	changed := bytes.Clone(old)
	changed[size/2] ^= 0xff
	makeTree(t, dst, map[string][]byte{"keep/big": keep, "gone/big": gone, "chg/big": old}, nil)
	makeTree(t, pub, map[string][]byte{"keep/big": keep, "chg/big": changed, "new/big": append(bytes.Clone(gone[:size/2]), treeData(704, size/2)...)}, nil)
	// Clean, cached pages, as a tree copied a while ago and read since has.
	for _, rel := range []string{"keep/big", "gone/big", "chg/big"} {
		p := filepath.Join(dst, rel)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, err := os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
		if r, n := residentPages(t, p); r != n {
			t.Fatalf("%s: %d of %d pages cached before the run", rel, r, n)
		}
	}
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	o := mirrorOpts(url, dst) // without Delete: gone/big stays
	o.ScanUnchanged = scanUnchanged
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reused < size/2 {
		t.Errorf("reused %d bytes, want at least %d (new/big from gone/big)", sum.Reused, size/2)
	}
	if r, n := residentPages(t, filepath.Join(dst, "gone/big")); r != 0 {
		t.Errorf("gone/big: %d of %d pages still cached after the scan read it", r, n)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "gone/big")); err != nil || !bytes.Equal(got, gone) {
		t.Errorf("gone/big changed (%v)", err)
	}
	if r, n := residentPages(t, filepath.Join(dst, "keep/big")); r != n {
		t.Errorf("keep/big: %d of %d pages cached, want all: the tree keeps it", r, n)
	}
}
