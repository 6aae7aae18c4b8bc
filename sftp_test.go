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
	"github.com/zsyncpipe/zsyncpipe/source"
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

// sftpCounting is the sftp transport with the sources it opens counting
// the ranges they deliver, and acting after each.
type sftpCounting struct {
	Transport
	after func(n int64)

	mu     sync.Mutex
	opened []*countingSource
}

type countingSource struct {
	source.StatsReporter
	ranges atomic.Int64
	after  func(n int64)
}

func (t *sftpCounting) OpenRanges(ctx context.Context, u *url.URL, size int64) (source.RangeSource, error) {
	s, err := t.Transport.OpenRanges(ctx, u, size)
	if err != nil {
		return nil, err
	}
	c := &countingSource{StatsReporter: s.(source.StatsReporter), after: t.after}
	t.mu.Lock()
	t.opened = append(t.opened, c)
	t.mu.Unlock()
	return c, nil
}

func (s *countingSource) ReadRanges(ctx context.Context, rs []source.Range, fn func(source.Range, io.Reader) error) error {
	return s.StatsReporter.ReadRanges(ctx, rs, func(r source.Range, data io.Reader) error {
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

// TestSyncSFTPMixedMirrors syncs from an HTTP URL in the control file and an
// SFTP mirror together: both serve blocks, and the result is exact.
func TestSyncSFTPMixedMirrors(t *testing.T) {
	old, target := netData(11)
	_, sftpURL, pool := sftpServe(t, target)
	web := faultserver.New(target, faultserver.Options{})
	t.Cleanup(web.Close)
	f := netControl(t, target, false, web.URL())
	dir, out := netDir(t, old)
	tr := &sftpCounting{Transport: SFTPTransport(pool)}
	sum, err := Sync(context.Background(), SyncOptions{
		Control: f, Output: out, MirrorURLs: []string{sftpURL}, HTTP: netHTTP(),
		Fetch: netFetch(), NoFsync: true, Transports: Transports{"sftp": tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
	if len(tr.opened) != 1 || tr.opened[0].ranges.Load() == 0 {
		t.Fatal("the sftp mirror served nothing")
	}
	if web.Requests() == 0 {
		t.Error("the http mirror served nothing")
	}
	if st := tr.opened[0].TransferStats(); sum.Requests < web.Requests()+st.Requests || st.Requests == 0 {
		t.Errorf("summary counts %d requests; http %d, sftp %d", sum.Requests, web.Requests(), st.Requests)
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
	tr := &sftpCounting{Transport: SFTPTransport(pool), after: func(n int64) {
		if n == 2 {
			killed.Add(int64(srv.KillConnections()))
		}
	}}
	fo := netFetch()
	fo.Concurrency = 1 // one call at a time: the kill lands mid-call
	sum, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Fetch: fo, NoFsync: true, Transports: Transports{"sftp": tr}})
	if err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	if killed.Load() == 0 {
		t.Fatal("no sshd process was killed: the test proves nothing")
	}
	if st := tr.opened[0].StatsReporter.(sftpRanges).Stats(); st.Connects < 2 {
		t.Fatalf("did not connect again: %+v", st)
	}
	if sum.Fetched == 0 {
		t.Fatal("nothing fetched")
	}
}

// TestSyncSFTPResume interrupts a sync over SFTP part way through the
// fetch and runs it again: the second run fetches less than a whole sync
// does, and the result is exact.
func TestSyncSFTPResume(t *testing.T) {
	old, target := netData(13)
	_, sftpURL, pool := sftpServe(t, target)
	f := netControl(t, target, false, sftpURL)
	fo := netFetch()
	fo.Concurrency = 1
	run := func(ctx context.Context, out string, tr Transport) (*Summary, error) {
		return Sync(ctx, SyncOptions{Control: f, Output: out, Fetch: fo, NoFsync: true, Transports: Transports{"sftp": tr}})
	}

	_, fresh := netDir(t, old)
	whole, err := run(context.Background(), fresh, SFTPTransport(pool))
	if err != nil {
		t.Fatal(err)
	}

	dir, out := netDir(t, old)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupted := &sftpCounting{Transport: SFTPTransport(pool), after: func(n int64) {
		if n == 8 {
			cancel()
		}
	}}
	if _, err := run(ctx, out, interrupted); err == nil {
		t.Fatal("the interrupted sync succeeded")
	}
	netCheckResult(t, out, old)
	netCheckDir(t, dir, netName, netName+".part", netName+".part.state")

	second, err := run(context.Background(), out, SFTPTransport(pool))
	if err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	if second.Fetched >= whole.Fetched {
		t.Fatalf("the resumed sync fetched %d bytes, a whole one %d", second.Fetched, whole.Fetched)
	}
}
