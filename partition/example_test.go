package partition_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/zsyncpipe/zsyncpipe/partition"
)

// Example assembles a file of three partitions. Each partition could come
// from another process (a subscriber of a shared queue, say): the calls
// are the same, and the last one in places the file.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "partition-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	src := bytes.Repeat([]byte("zsyncpipe "), 1000) // 10,000 bytes
	man, err := partition.Make(bytes.NewReader(src), int64(len(src)), 4096, "sha512")
	if err != nil {
		log.Fatal(err)
	}

	target := filepath.Join(dir, "file")
	v, err := partition.New(target, partition.Options{}).Begin(ctx, man, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	for n := range man.Parts {
		c, err := v.Claim(ctx, n) // waits while another writes partition n
		if err != nil {
			log.Fatal(err)
		}
		// Fetch the partition from wherever it is; here, a copy.
		if _, err := c.Writer().WriteAt(src[c.Offset():c.Offset()+c.Size()], 0); err != nil {
			log.Fatal(err)
		}
		complete, err := c.Commit(ctx) // checked against the manifest
		c.Release()
		if err != nil {
			log.Fatal(err)
		}
		if complete {
			err := v.Place(ctx, func(path string) error { return os.Rename(path, target) })
			if err != nil {
				log.Fatal(err)
			}
		}
	}
	got, _ := os.ReadFile(target)
	fmt.Println(len(man.Parts), "partitions,", len(got), "bytes, identical:", bytes.Equal(got, src))
	// Output: 3 partitions, 10000 bytes, identical: true
}
