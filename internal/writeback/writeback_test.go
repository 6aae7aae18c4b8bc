package writeback

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

func TestStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("zsyncpipe"), 100000)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := Start(f, 0, 0); err != nil {
		t.Fatalf("Start(whole file): %v", err)
	}
	if err := Start(f, 4096, 8192); err != nil {
		t.Fatalf("Start(range): %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file changed by the hint: %v", err)
	}
	err = Start(f, 0, 0)
	if runtime.GOOS == "linux" && err == nil {
		t.Error("Start on a closed file: no error")
	}
	if runtime.GOOS != "linux" && err != nil {
		t.Errorf("Start where it does nothing: %v", err)
	}
}

func TestEvery(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := NewEvery(f, 1000)
	e.Wrote(999)
	if n := e.hints.Load(); n != 0 {
		t.Fatalf("%d hints before the mark", n)
	}
	e.Wrote(1)
	if n := e.hints.Load(); n != 1 {
		t.Fatalf("%d hints at the mark, want 1", n)
	}
	// Concurrent writers: about one hint per 1000 bytes, never more.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				e.Wrote(10)
			}
		})
	}
	wg.Wait()
	if n := e.hints.Load(); n < 2 || n > 81 {
		t.Errorf("%d hints for 80000 bytes written at a mark of 1000", n)
	}
}
