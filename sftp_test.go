package zsyncpipe

import (
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/internal/sshtest"
	"github.com/zsyncpipe/zsyncpipe/sftpsource"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// sftpServe starts sshd serving target and returns its URL and a pool that
// logs in to it.
func sftpServe(t *testing.T, target []byte) (*sshtest.Server, string, *sftpsource.Pool) {
	t.Helper()
	srv := sshtest.Start(t)
	if err := os.WriteFile(filepath.Join(srv.Root, netName), target, 0o644); err != nil {
		t.Fatal(err)
	}
	pool := sftpsource.NewPool(sftpsource.Options{
		IdentityFiles: []string{srv.IdentityFile},
		KnownHosts:    []string{srv.KnownHosts},
		NoAgent:       true,
		Backoff:       10 * time.Millisecond,
	})
	t.Cleanup(func() { pool.Close() })
	return srv, srv.URL(netName), pool
}

// sftpCounting is an sftp source that counts the ranges it delivers and
// may act after each.
type sftpCounting struct {
	*sftpsource.Source
	ranges atomic.Int64
	after  func(n int64)
}

func (s *sftpCounting) ReadRanges(ctx context.Context, rs []stages.Range, fn func(stages.Range, io.Reader) error) error {
	return s.Source.ReadRanges(ctx, rs, func(r stages.Range, data io.Reader) error {
		if err := fn(r, data); err != nil {
			return err
		}
		n := s.ranges.Add(1)
		if s.after != nil {
			s.after(n)
		}
		return nil
	})
}

func sftpOpener(t *testing.T, pool *sftpsource.Pool, after func(int64)) (func(*url.URL) (stages.RangeSource, error), *[]*sftpCounting) {
	var mu sync.Mutex
	var opened []*sftpCounting
	return func(u *url.URL) (stages.RangeSource, error) {
		s, err := pool.Source(u.String())
		if err != nil {
			return nil, err
		}
		c := &sftpCounting{Source: s, after: after}
		mu.Lock()
		opened = append(opened, c)
		mu.Unlock()
		return c, nil
	}, &opened
}

// TestSyncSFTPMixedMirrors syncs from an HTTP URL in the control file and an
// SFTP mirror together: both serve blocks, and the result is exact.
func TestSyncSFTPMixedMirrors(t *testing.T) {
	old, target := netData(11)
	_, sftpURL, pool := sftpServe(t, target)
	web := faultserver.New(target, faultserver.Options{})
	t.Cleanup(web.Close)
	f := netControl(t, target, false, web.URL())
	dir, out := netDir(t, old)
	open, opened := sftpOpener(t, pool, nil)
	_, err := Sync(context.Background(), SyncOptions{
		Control: f, Output: out, MirrorURLs: []string{sftpURL}, HTTP: netHTTP(),
		Fetch: netFetch(), NoFsync: true, OpenURL: open,
	})
	if err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
	if len(*opened) != 1 || (*opened)[0].ranges.Load() == 0 {
		t.Error("the sftp mirror served nothing")
	}
	if web.Requests() == 0 {
		t.Error("the http mirror served nothing")
	}
}

// TestSyncSFTPDroppedConnection kills sshd's connection processes while
// blocks are being fetched: the source connects again and the sync ends
// with the exact target.
func TestSyncSFTPDroppedConnection(t *testing.T) {
	old, target := netData(12)
	srv, sftpURL, pool := sftpServe(t, target)
	f := netControl(t, target, false, sftpURL)
	_, out := netDir(t, old)
	var killed atomic.Int64
	open, opened := sftpOpener(t, pool, func(n int64) {
		if n == 2 {
			killed.Add(int64(srv.KillConnections()))
		}
	})
	fo := netFetch()
	fo.Concurrency = 1 // one call at a time: the kill lands mid-call
	sum, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Fetch: fo, NoFsync: true, OpenURL: open})
	if err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	if killed.Load() == 0 {
		t.Fatal("no sshd process was killed: the test proves nothing")
	}
	if st := (*opened)[0].Stats(); st.Connects < 2 {
		t.Fatalf("did not connect again: %+v", st)
	}
	if sum.Fetched == 0 {
		t.Fatal("nothing fetched")
	}
}
