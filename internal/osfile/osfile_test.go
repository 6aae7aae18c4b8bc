package osfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestLockExcludesSecondOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.part")
	a, err := OpenLocked(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocked(path, 0o644); !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenLocked = %v, want ErrLocked", err)
	}
	b, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := Lock(b); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock of another open file = %v, want ErrLocked", err)
	}
	a.Close()
	if err := Lock(b); err != nil {
		t.Fatalf("Lock after the holder closed: %v", err)
	}
}

func TestOpenLockedDoesNotTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenLocked(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if data, _ := os.ReadFile(path); string(data) != "keep" {
		t.Fatalf("content after OpenLocked = %q", data)
	}
}

func TestNamesFollowsRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.part")
	f, err := OpenLocked(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ok, err := Names(path, f); !ok || err != nil {
		t.Fatalf("Names before rename = %v, %v", ok, err)
	}
	if err := Replace(context.Background(), path, filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if ok, err := Names(path, f); ok || err != nil {
		t.Fatalf("Names after rename = %v, %v; want false, nil", ok, err)
	}
	if ok, _ := Names(filepath.Join(dir, "f"), f); !ok {
		t.Fatal("the new name does not name the file")
	}
	// The lock went with the file: a new file at the old path is free.
	g, err := OpenLocked(path, 0o644)
	if err != nil {
		t.Fatalf("OpenLocked of a new file at the old path: %v", err)
	}
	g.Close()
}

// TestLockReleasedOnKill holds the lock in a child process, kills it with
// SIGKILL, and takes the lock at once: no stale lock survives a crash.
func TestLockReleasedOnKill(t *testing.T) {
	if path := os.Getenv("OSFILE_TEST_HOLD"); path != "" {
		f, err := OpenLocked(path, 0o644)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		f.Close()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "f.part")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockReleasedOnKill$")
	cmd.Env = append(os.Environ(), "OSFILE_TEST_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	if _, err := OpenLocked(path, 0o644); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenLocked while the child holds it = %v, want ErrLocked", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	f, err := OpenLocked(path, 0o644)
	if err != nil {
		t.Fatalf("OpenLocked after the holder was killed: %v", err)
	}
	f.Close()
}

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed")
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, fi, err := OpenRegular(ctx, path)
	if err != nil || fi.Size() != 4 {
		t.Fatalf("OpenRegular(regular) = %v, %v", fi, err)
	}
	f.Close()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err == nil {
		f, _, err := OpenRegular(ctx, link)
		if err != nil {
			t.Fatalf("OpenRegular(symlink to a regular file) = %v", err)
		}
		f.Close()
	}
	if _, _, err := OpenRegular(ctx, dir); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("OpenRegular(directory) = %v, want ErrNotRegular", err)
	}
	if _, _, err := OpenRegular(ctx, os.DevNull); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("OpenRegular(%s) = %v, want ErrNotRegular", os.DevNull, err)
	}
	if _, _, err := OpenRegular(ctx, filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenRegular(missing) = %v, want ErrNotExist", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := OpenRegular(cctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenRegular(canceled) = %v, want context.Canceled", err)
	}
}

func TestSyncWritebackReplace(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "new"), filepath.Join(dir, "out")
	if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(src, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	Sparse(f)
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	if err := Writeback(f, 0, 3); err != nil {
		t.Fatalf("Writeback: %v", err)
	}
	if err := Sync(f); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// Renamed while open (and so while locked): Windows needs the
	// FILE_SHARE_DELETE of OpenFile for this.
	if err := Replace(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Fatalf("SyncDir: %v", err)
	}
	data, err := os.ReadFile(dst)
	if err != nil || len(data) != 1<<20 || string(data[:3]) != "new" {
		t.Fatalf("dst after Replace: %d bytes %q, %v", len(data), data[:min(3, len(data))], err)
	}
	if _, err := os.Stat(src); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("src after Replace: %v", err)
	}
	f.Close()
	if err := Writeback(f, 0, 3); (err == nil) == (runtime.GOOS == "linux") {
		t.Fatalf("Writeback of a closed file = %v; want an error on Linux only, where it is not a no-op", err)
	}
}

func TestSetTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mtime := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	if runtime.GOOS == "linux" {
		mtime = mtime.Add(123456789) // nanoseconds are kept
	}
	if err := SetTimes(f, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.ModTime().Equal(mtime) {
		t.Fatalf("mtime = %v, %v; want %v", fi.ModTime(), err, mtime)
	}
}

// A second open of a locked file, in this process or another, fails at
// once with ErrLocked; the lock ends with the file (or the process).
func ExampleOpenLocked() {
	dir, _ := os.MkdirTemp("", "osfile")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "out.part")
	held, err := OpenLocked(path, 0o644)
	if err != nil {
		panic(err)
	}
	_, err = OpenLocked(path, 0o644)
	fmt.Println(errors.Is(err, ErrLocked))
	held.Close()
	again, err := OpenLocked(path, 0o644)
	fmt.Println(err)
	again.Close()
	// Output:
	// true
	// <nil>
}

// TestSyncFS: where syncfs exists it succeeds on a directory and fails on
// a missing one; elsewhere it says it is unsupported.
func TestSyncFS(t *testing.T) {
	dir := t.TempDir()
	err := SyncFS(dir)
	if !HasSyncFS {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("SyncFS without syncfs: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := SyncFS(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("SyncFS of a missing directory: %v", err)
	}
}

// TestOpenFS: an FS flushes its file system any number of times through
// one descriptor; a closed one fails with a *fs.PathError naming the
// directory; a missing directory is refused by OpenFS. (That a write
// error since OpenFS is reported needs a failing device: the kernel's
// errseq semantics of syncfs(2), documented in the FS comment.)
func TestOpenFS(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !HasSyncFS {
		if err := f.Sync(); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("Sync without syncfs: %v", err)
		}
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var pe *fs.PathError
	if err := f.Sync(); !errors.As(err, &pe) || pe.Path != dir || pe.Op != "syncfs" {
		t.Fatalf("Sync after Close: %v", err)
	}
	if _, err := OpenFS(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenFS of a missing directory: %v", err)
	}
}

// TestRename: Rename replaces a file, refuses to put a file over a
// directory (rename(2) itself refuses, without the lookup os.Rename makes
// first) with an *os.LinkError naming both paths, and leaves both there.
func TestRename(t *testing.T) {
	dir := t.TempDir()
	src, dst, sub := filepath.Join(dir, "src"), filepath.Join(dir, "dst"), filepath.Join(dir, "sub")
	for p, data := range map[string]string{src: "new", dst: "old"} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Rename(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "new" {
		t.Fatalf("after Rename, dst holds %q, %v", b, err)
	}
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Rename(dst, sub)
	var le *os.LinkError
	if !errors.As(err, &le) || le.Op != "rename" || le.Old != dst || le.New != sub {
		t.Fatalf("Rename of a file over a directory = %v, want an *os.LinkError naming both", err)
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Errorf("the directory is gone: %v, %v", fi, err)
	}
	if _, err := os.Stat(dst); err != nil {
		t.Errorf("the file is gone: %v", err)
	}
	if err := Rename(filepath.Join(dir, "missing"), dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// TestOpenWrite: OpenWrite creates, truncates and refuses (O_EXCL) as
// os.OpenFile does, with the mode asked for (set-id bits included, the
// umask aside), and the file reads and writes as one os.OpenFile opened.
func TestOpenWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := OpenWrite(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640|os.ModeSetgid)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != p {
		t.Errorf("Name() = %q, want %q", f.Name(), p)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "hello" {
		t.Errorf("ReadAt = %q, %v", b, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The mode os.OpenFile gives.
	q := p + ".os"
	g, err := os.OpenFile(q, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640|os.ModeSetgid)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	fi, err := os.Stat(p)
	gi, gerr := os.Stat(q)
	if err != nil || gerr != nil || fi.Mode() != gi.Mode() {
		t.Errorf("mode %v (%v), os.OpenFile's %v (%v)", fi.Mode(), err, gi.Mode(), gerr)
	}
	_, err = OpenWrite(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &pe) || pe.Op != "open" || pe.Path != p {
		t.Errorf("OpenWrite with O_EXCL of an existing file = %v, want an *fs.PathError wrapping fs.ErrExist", err)
	}
	f, err = OpenWrite(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != 0 {
		t.Errorf("after O_TRUNC: %v, %v; want an empty file", fi, err)
	}
}
