//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package announce

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// errBlocked stands for the result of a call that did not return.
var errBlocked = errors.New("blocked")

// within runs fn and fails the test if it has not returned after 10 s
// (returning errBlocked): an open(2) of a FIFO without a writer never
// returns. Such an open is left blocked; the process's exit ends it.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Errorf("%s of a FIFO waited for a writer", what)
		return errBlocked
	}
}

// TestFIFOsRefused: a FIFO where a publisher or a subscriber expects a
// regular file — a file to announce, whole or in partitions; a local file
// whose identity the subscriber checks; a file: URL, whole, as a control
// file or as a range source for partitions — blocked their open for ever.
// Each is now refused at once: the publisher's with ErrUsage (the
// command's usage exit code) and ErrNotRegular.
func TestFIFOsRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pub, err := NewPublisher(PublisherOptions{Dir: dir, BaseURL: "http://127.0.0.1/", PartitionSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	err = within(t, "Message", func() error {
		_, err := pub.Message(Change{Op: Write, Path: "fifo"})
		return err
	})
	if err != errBlocked && (!errors.Is(err, zsyncpipe.ErrUsage) || !errors.Is(err, zsyncpipe.ErrNotRegular)) {
		t.Errorf("Message(FIFO) = %v, want ErrUsage and ErrNotRegular", err)
	}
	err = within(t, "PartitionMessages", func() error {
		_, _, err := pub.PartitionMessages(ctx, "fifo")
		return err
	})
	if err != errBlocked && (!errors.Is(err, zsyncpipe.ErrUsage) || !errors.Is(err, zsyncpipe.ErrNotRegular)) {
		t.Errorf("PartitionMessages(FIFO) = %v, want ErrUsage and ErrNotRegular", err)
	}

	sub, err := NewSubscriber(SubscriberOptions{Dir: filepath.Join(dir, "sub"), NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(fifo)
	if err != nil {
		t.Fatal(err)
	}
	m := &v03.Message{Size: 0, Identity: &v03.Identity{Method: v03.SHA512, Value: "x"}}
	var same bool
	within(t, "matches", func() error { same = sub.matches(fifo, fi, m); return nil })
	if same {
		t.Error("a FIFO matched an announced identity")
	}
	err = within(t, "open(file: URL)", func() error {
		rc, err := sub.open(ctx, "file://"+filepath.ToSlash(fifo))
		if err == nil {
			rc.Close()
		}
		return err
	})
	if err != errBlocked && !errors.Is(err, zsyncpipe.ErrNotRegular) {
		t.Errorf("open(file: URL of a FIFO) = %v, want ErrNotRegular", err)
	}
	err = within(t, "controlFile(file: URL)", func() error {
		_, _, err := sub.controlFile(ctx, &v03.Message{BaseURL: "file:///", Zsync: &v03.Zsync{URL: "file://" + filepath.ToSlash(fifo)}})
		return err
	})
	if err != errBlocked && !errors.Is(err, zsyncpipe.ErrNotRegular) {
		t.Errorf("controlFile(file: URL of a FIFO) = %v, want ErrNotRegular", err)
	}
	u := &url.URL{Scheme: "file", Path: filepath.ToSlash(fifo)}
	err = within(t, "rangeSource(file: URL)", func() error {
		_, closeSrc, err := sub.rangeSource(u, 0)
		if err == nil {
			closeSrc()
		}
		return err
	})
	if err != errBlocked && !errors.Is(err, zsyncpipe.ErrNotRegular) {
		t.Errorf("rangeSource(file: URL of a FIFO) = %v, want ErrNotRegular", err)
	}
}
