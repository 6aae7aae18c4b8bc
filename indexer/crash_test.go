package indexer

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
)

const crashEnv = "ZSYNCPIPE_INDEXER_CRASH_DIR"

// TestMain runs the child of TestCrash when the environment names a tree:
// it indexes the tree, changes a file, and again, until it is killed.
func TestMain(m *testing.M) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		os.Exit(m.Run())
	}
	for i := 0; ; i++ {
		if i == 1 {
			os.WriteFile(dir+".started", nil, 0o644)
		}
		if _, err := Index(context.Background(), dir, Options{Small: 1024, Workers: 2, AppendOnly: true}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		p := filepath.Join(dir, "d0", "f0")
		b, _ := os.ReadFile(p)
		if len(b) == 0 {
			b = []byte{0} // a kill in the middle of the WriteFile below emptied it
		}
		b[0]++
		os.WriteFile(p, b, 0o644)
		// A growing file: its sidecar is rewritten in every pass.
		if f, err := os.OpenFile(filepath.Join(dir, "d1", "f1"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
			f.Write(randBytes(uint64(i), 3000))
			f.Close()
		}
	}
}

// visibleConsistent checks what a client could see: every control file
// that is not a temporary file is complete, and the index, if any, is
// complete and names only complete control files.
func visibleConsistent(t *testing.T, dir string) {
	t.Helper()
	pub := filepath.Join(dir, ".zsyncpipe")
	filepath.WalkDir(pub, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || isTemp(d.Name()) || !strings.HasSuffix(p, ".zsync") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil // removed meanwhile
		}
		defer f.Close()
		if _, err := control.Read(f); err != nil {
			t.Errorf("half-written control file %s: %v", p, err)
		}
		return nil
	})
	x, err := ReadIndex(dir)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatalf("visible index unreadable: %v", err)
	}
	for _, e := range x.Entries {
		if e.Control == "" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(e.Control)))
		if err != nil {
			t.Errorf("the index names %s, which is missing: %v", e.Control, err)
			continue
		}
		if _, err := control.Read(f); err != nil {
			t.Errorf("the index names %s, which is broken: %v", e.Control, err)
		}
		f.Close()
	}
}

// TestCrash kills an indexing process with SIGKILL at many moments and
// checks after each kill that no half-written control file or index is
// visible, and that a new run completes the index.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	for i := range 8 {
		for j := range 12 {
			put(t, dir, fmt.Sprintf("d%d/f%d", i, j), randBytes(uint64(i*100+j), 4<<10+(i*j%7)*20<<10))
		}
	}
	for round := range 6 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var out strings.Builder
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(dir + ".started"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the child did not start: %s", out.String())
			}
		}
		os.Remove(dir + ".started")
		time.Sleep(time.Duration(round*37) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		visibleConsistent(t, dir)
	}
	if x, err := ReadIndex(dir); err != nil || x.Header.Generation < 2 {
		t.Fatalf("the killed processes did not index: %v", err)
	}
	// Grow the file once more: whatever sidecar the kills left, the
	// control file must be the one a fresh make writes.
	f, err := os.OpenFile(filepath.Join(dir, "d1", "f1"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(randBytes(99, 5000))
	f.Close()
	if _, err := Index(context.Background(), dir, Options{Small: 1024, NoSync: true, AppendOnly: true}); err != nil {
		t.Fatal(err)
	}
	if m := mismatch(t, dir); m != "" {
		t.Fatal(m)
	}
	checkFresh(t, dir, "d1/f1", false, 0)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && isTemp(d.Name()) {
			t.Errorf("temporary file left after a complete run: %s", p)
		}
		return nil
	})
}
