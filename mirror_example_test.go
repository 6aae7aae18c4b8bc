package zsyncpipe_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Mirror a published tree into a local directory. Here the tree is a local
// directory with a one-file index; in use, URL is the http(s) URL of the
// tree's root, published by "zsyncpipe index" or "zsyncpipe serve".
func ExampleMirror() {
	pub, _ := os.MkdirTemp("", "pub")
	dst, _ := os.MkdirTemp("", "dst")
	defer os.RemoveAll(pub)
	defer os.RemoveAll(dst)
	idx := &treeindex.Index{Header: treeindex.Header{Generation: 1}}
	data := []byte("hello\n")
	os.WriteFile(filepath.Join(pub, "hello.txt"), data, 0o644)
	idx.Entries = append(idx.Entries, treeindex.Entry{
		Path: "hello.txt", Type: treeindex.File, Size: int64(len(data)), Mode: 0o644,
		SHA256: []byte{0x58, 0x91, 0xb5, 0xb5, 0x22, 0xd5, 0xdf, 0x08, 0x6d, 0x0f, 0xf0, 0xb1, 0x10, 0xfb, 0xd9, 0xd2,
			0x1b, 0xb4, 0xfc, 0x71, 0x63, 0xaf, 0x34, 0xd0, 0x82, 0x86, 0xa2, 0xe8, 0x46, 0xf6, 0xbe, 0x03},
	})
	os.MkdirAll(filepath.Join(pub, treeindex.Dir), 0o755)
	f, _ := os.Create(filepath.Join(pub, filepath.FromSlash(treeindex.IndexPath)))
	if err := idx.Write(f, treeindex.WriterOptions{}); err != nil {
		log.Fatal(err)
	}
	f.Close()

	sum, err := zsyncpipe.Mirror(context.Background(), zsyncpipe.MirrorOptions{URL: pub, Dir: dst, Delete: true})
	if err != nil {
		log.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "hello.txt"))
	fmt.Printf("%d new, %d bytes fetched: %s", sum.New, sum.Fetched, got)
	// Output:
	// 1 new, 6 bytes fetched: hello
}
