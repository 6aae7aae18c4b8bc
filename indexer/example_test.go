package indexer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zsyncpipe/zsyncpipe/indexer"
)

// Example publishes a small tree and reports the changes a second pass
// finds, as a caller that announces them (e.g. to a message broker) would.
func Example() {
	dir, _ := os.MkdirTemp("", "tree")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	os.WriteFile(filepath.Join(dir, "data", "big.bin"), make([]byte, 100<<10), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644)

	opts := indexer.Options{
		NoSync: true,
		OnChange: func(ctx context.Context, c indexer.Change) error {
			if c.Entry.Control != "" {
				fmt.Println(c.Op, c.Path, "control:", c.Entry.Control)
				return nil
			}
			fmt.Println(c.Op, c.Path)
			return nil
		},
	}
	if _, err := indexer.Index(context.Background(), dir, opts); err != nil {
		panic(err)
	}
	os.Remove(filepath.Join(dir, "README"))
	res, err := indexer.Index(context.Background(), dir, opts)
	if err != nil {
		panic(err)
	}
	fmt.Println("generation", res.Generation)
	// Output:
	// created README
	// created data
	// created data/big.bin control: .zsyncpipe/data/big.bin.zsync
	// removed README
	// generation 2
}
