package treeindex_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

func Example() {
	var buf bytes.Buffer
	w, err := treeindex.NewWriter(&buf, treeindex.Header{Generation: 1}, treeindex.WriterOptions{})
	if err != nil {
		panic(err)
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.Add(treeindex.Entry{Path: "bin", Type: treeindex.Directory, Mode: 0o755, MTime: mtime})
	w.Add(treeindex.Entry{Path: "bin/tool", Type: treeindex.File, Size: 1 << 20, Mode: 0o755, MTime: mtime,
		SHA256: make([]byte, 32), Control: treeindex.ControlPath("bin/tool", false)})
	if err := w.Close(); err != nil {
		panic(err)
	}

	r, err := treeindex.NewReader(&buf, treeindex.ReaderOptions{})
	if err != nil {
		panic(err)
	}
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break // complete and verified
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %s %d %q\n", e.Type, e.Path, e.Size, e.Control)
	}
	// Output:
	// dir bin 0 ""
	// file bin/tool 1048576 ".zsyncpipe/bin/tool.zsync"
}
