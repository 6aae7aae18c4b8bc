package sftpsource_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/zsyncpipe/zsyncpipe/sftpsource"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// Reading two ranges of a remote file, logging in with the ssh agent or
// ~/.ssh/id_* and checking the host key against ~/.ssh/known_hosts.
func ExampleNew() {
	s, err := sftpsource.New("sftp://me@files.example.org/pub/big.iso", sftpsource.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	err = s.ReadRanges(context.Background(), []source.Range{{Start: 0, End: 4096}, {Start: 1 << 20, End: 1<<20 + 4096}},
		func(r source.Range, data io.Reader) error {
			n, err := io.Copy(io.Discard, data)
			fmt.Println(r.Start, n)
			return err
		})
	if err != nil {
		log.Fatal(err)
	}
}

// One pool for every file of a run: the control file and the blocks go
// over one SSH connection.
func ExamplePool() {
	pool := sftpsource.NewPool(sftpsource.Options{KnownHosts: []string{"/etc/zsync/known_hosts"}})
	defer pool.Close()
	ctl, err := pool.Download(context.Background(), "sftp://files.example.org/pub/big.iso.zsync", time.Time{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ctl.Body))
	src, err := pool.Source("sftp://files.example.org/pub/big.iso")
	if err != nil {
		log.Fatal(err)
	}
	_ = src // a source.RangeSource for stages.Fetch, or zsyncpipe.SFTPTransport(pool) for Sync
}
