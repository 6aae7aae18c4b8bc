//go:build linux

package zsyncpipe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A mirror creates one file per new or updated file and next to nothing
// else: creating an inode is what costs most on ext4 without a journal
// (docs/trees.md, "What a mirror writes"). inotify counts what the run
// creates (IN_CREATE: a rename does not count) in the tree and below its
// state directory: a directory per partial result, or a temporary file per
// save of a resume state, would show here.
func TestMirrorCreatesOneInodePerFile(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	const rebuilt, updated, added = 12, 10, 6
	oldFiles, newFiles := map[string][]byte{}, map[string][]byte{}
	for i := range rebuilt { // changed in one byte: rebuilt from the old version
		data := treeData(uint64(100+i), 64<<10)
		oldFiles[fmt.Sprintf("big/f%d", i)] = data
		changed := bytes.Clone(data)
		changed[1000] ^= 0xff
		newFiles[fmt.Sprintf("big/f%d", i)] = changed
	}
	for i := range updated { // small: fetched whole
		oldFiles[fmt.Sprintf("small/s%d", i)] = treeData(uint64(200+i), 2000)
		newFiles[fmt.Sprintf("small/s%d", i)] = treeData(uint64(300+i), 2000)
	}
	for i := range added {
		newFiles[fmt.Sprintf("small/n%d", i)] = treeData(uint64(400+i), 3000)
	}
	// Rewritten throughout: the scan opens a partial result for it, finds
	// nothing, and the file is taken from its pack instead, written into
	// that partial result.
	text := func(seed int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < 40<<10; i++ {
			fmt.Fprintf(&b, "version %d, line %d: some source text\n", seed, i*seed%977)
		}
		return b.Bytes()
	}
	oldFiles["text/rewritten.txt"], newFiles["text/rewritten.txt"] = text(1), text(2)
	makeTree(t, dst, oldFiles, nil)
	makeTree(t, pub, newFiles, nil)
	publishTree(t, pub, 1)
	packTree(t, pub, nil)
	url, _ := serveTree(t, pub)
	meta := filepath.Join(dst, MirrorStateDir)
	parts := filepath.Join(meta, "parts")
	if err := os.MkdirAll(parts, 0o755); err != nil {
		t.Fatal(err)
	}

	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	where := map[int32]string{}
	for _, dir := range []string{dst, filepath.Join(dst, "big"), filepath.Join(dst, "small"), filepath.Join(dst, "text"), meta, parts} {
		wd, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE)
		if err != nil {
			t.Fatalf("inotify watch %s: %v", dir, err)
		}
		where[int32(wd)] = dir
	}

	o := mirrorOpts(url, dst)
	o.NoFsync = false
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Updated != rebuilt+updated+1 || sum.New != added || sum.Packed < 1 {
		t.Fatalf("summary %+v: want %d updated and %d new, some from the pack", sum, rebuilt+updated+1, added)
	}

	// What was created, by directory.
	created := map[string][]string{}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatalf("read inotify events: %v", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
			off += unix.SizeofInotifyEvent + nameLen
			if mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflow")
			}
			if mask&unix.IN_ISDIR != 0 {
				name += "/"
			}
			rel, _ := filepath.Rel(dst, where[wd])
			created[rel] = append(created[rel], name)
		}
	}
	t.Logf("created: %q", created)
	inTree := len(created["."]) + len(created["big"]) + len(created["small"]) + len(created["text"])
	if inTree != updated+added {
		t.Errorf("%d files created in the tree, want %d: one per small file fetched", inTree, updated+added)
	}
	// One partial result per file the scan looked for (its new inode,
	// renamed into place); a state only for a rebuild that ran a second
	// or more (a slow machine: allow two).
	metaDir, partsDir := filepath.Join(MirrorStateDir), filepath.Join(MirrorStateDir, "parts")
	if n := len(created[partsDir]); n < rebuilt+1 || n > rebuilt+3 {
		t.Errorf("%d entries created in the parts directory, want %d (one partial result per file the scan looked for): %q", n, rebuilt+1, created[partsDir])
	}
	for _, name := range append(created[partsDir], created[metaDir]...) {
		if strings.HasSuffix(name, "/") {
			t.Errorf("a directory was created below %s: %s", MirrorStateDir, name)
		}
	}
	// The cached index, the mirror's state (saved once a second at most,
	// and at the end) and the record of a complete run.
	if n := len(created[metaDir]); n > 6 {
		t.Errorf("%d files created in %s, want at most 6: %q", n, MirrorStateDir, created[metaDir])
	}
}
