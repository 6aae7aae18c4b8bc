package zsyncpipe_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// exampleData returns an old and a new version of a file: the new one is
// the old with a piece changed in the middle.
func exampleData() (old, target []byte) {
	old = bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog. "), 20000)
	for i := range old {
		old[i] += byte(i / 997) // no two blocks alike
	}
	target = bytes.Clone(old)
	copy(target[400000:], "a few changed bytes in the middle of the file")
	return old, target
}

// Make computes the control file of a file, and control.Write writes it.
func ExampleMake() {
	_, target := exampleData()
	f, err := zsyncpipe.Make(context.Background(), bytes.NewReader(target), zsyncpipe.MakeOptions{
		Filename:  "data.bin",
		URLs:      []string{"data.bin"},
		Blocksize: 4096,
	})
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		log.Fatal(err)
	}
	header, _, _ := strings.Cut(buf.String(), "\n\n")
	for _, line := range strings.Split(header, "\n") {
		if name, _, _ := strings.Cut(line, ":"); name == "Filename" || name == "Blocksize" || name == "Length" || name == "URL" {
			fmt.Println(line)
		}
	}
	fmt.Println(f.Blocks(), "blocks")
	// Output:
	// Filename: data.bin
	// Blocksize: 4096
	// Length: 900000
	// URL: data.bin
	// 220 blocks
}

// Sync rebuilds a file from an old version and the control file of the new
// one, fetching only what the old version lacks.
func ExampleSync() {
	old, target := exampleData()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The old version, where the new one goes.
	out := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(out, old, 0o644); err != nil {
		log.Fatal(err)
	}
	f, err := zsyncpipe.Make(context.Background(), bytes.NewReader(target), zsyncpipe.MakeOptions{Filename: "data.bin", Blocksize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	sum, err := zsyncpipe.Sync(context.Background(), zsyncpipe.SyncOptions{
		Control: f,
		Output:  out,
		// Missing ranges come from here; without it, from the control
		// file's URLs.
		Source: source.ReaderAt{R: bytes.NewReader(target)},
	})
	if err != nil {
		log.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	fmt.Printf("reused %d bytes, fetched %d; equal: %v\n", sum.Reused, sum.Fetched, bytes.Equal(got, target))
	// Output:
	// reused 895904 bytes, fetched 4096; equal: true
}

// LoadControl reads a control file from a path or a URL; its BaseURL is
// what the control file's relative URLs resolve against.
func ExampleLoadControl() {
	_, target := exampleData()
	f, err := zsyncpipe.Make(context.Background(), bytes.NewReader(target), zsyncpipe.MakeOptions{Filename: "data.bin", URLs: []string{"data.bin"}})
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		log.Fatal(err)
	}
	// A server that publishes the control file under another name, and
	// redirects to it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest.zsync" {
			http.Redirect(w, r, "/files/v2/data.bin.zsync", http.StatusFound)
			return
		}
		w.Write(buf.Bytes())
	}))
	defer srv.Close()
	ctl, err := zsyncpipe.LoadControl(context.Background(), srv.URL+"/latest.zsync", zsyncpipe.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ctl.File.Filename, ctl.File.Length)
	fmt.Println(strings.TrimPrefix(ctl.BaseURL, srv.URL))
	// Output:
	// data.bin 900000
	// /files/v2/
}

// countingSource is a RangeSource of its own: it serves ranges from memory
// and counts them.
type countingSource struct {
	data   []byte
	ranges int
}

// ReadRanges implements source.RangeSource. (A source used by several
// calls at once must be safe for concurrent use; Sync makes one call at a
// time here, as the example asks for a single call in flight.)
func (s *countingSource) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	for _, r := range ranges {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.ranges++
		if err := fn(r, bytes.NewReader(s.data[r.Start:r.End])); err != nil {
			return err
		}
	}
	return nil
}

// A RangeSource of one's own serves the missing ranges of a sync.
func Example_customRangeSource() {
	old, target := exampleData()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	seed := filepath.Join(dir, "old.bin")
	if err := os.WriteFile(seed, old, 0o644); err != nil {
		log.Fatal(err)
	}
	f, err := zsyncpipe.Make(context.Background(), bytes.NewReader(target), zsyncpipe.MakeOptions{Filename: "data.bin", Blocksize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	src := &countingSource{data: target}
	_, err = zsyncpipe.Sync(context.Background(), zsyncpipe.SyncOptions{
		Control: f,
		Output:  filepath.Join(dir, "new.bin"),
		Seeds:   []string{seed},
		Source:  src,
		Fetch:   stages.FetchLimits{Concurrency: 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ranges fetched:", src.ranges)
	// Output:
	// ranges fetched: 1
}
