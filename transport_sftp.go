package zsyncpipe

import (
	"context"
	"fmt"
	"net/url"

	"github.com/zsyncpipe/zsyncpipe/sftpsource"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// SFTPTransport returns the Transport of sftp:// URLs that reads through
// pool (package sftpsource): pass it as Transports{"sftp": …} to Sync and
// LoadControl. Every file read through one pool shares its SSH connections,
// so the control file and the missing blocks of a sync go over one
// connection.
func SFTPTransport(pool *sftpsource.Pool) Transport { return sftpTransport{pool} }

type sftpTransport struct{ pool *sftpsource.Pool }

// OpenRanges connects (if the pool has no connection yet), checks that the
// file has the target's length, and returns its source.
func (t sftpTransport) OpenRanges(ctx context.Context, u *url.URL, size int64) (source.RangeSource, error) {
	s, err := t.pool.Source(u.String())
	if err != nil {
		return nil, err
	}
	got, _, err := s.Stat(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	if size >= 0 && got != size {
		s.Close()
		return nil, fmt.Errorf("%s has %d bytes, not the target's length %d", s, got, size)
	}
	return sftpRanges{s}, nil
}

// Get reads a whole control file, or answers NotModified when its mtime is
// not after opts.IfModifiedSince.
func (t sftpTransport) Get(ctx context.Context, u *url.URL, opts GetOptions) (*Fetched, error) {
	f, err := t.pool.Download(ctx, u.String(), opts.IfModifiedSince)
	if err != nil {
		return nil, err
	}
	if int64(len(f.Body)) > opts.MaxSize {
		return nil, fmt.Errorf("%s: %d bytes exceed the limit of %d", u.Redacted(), len(f.Body), opts.MaxSize)
	}
	return &Fetched{Body: f.Body, URL: u, ModTime: f.ModTime, NotModified: f.NotModified}, nil
}

// sftpRanges reports an sftp source's transfers to the summary.
type sftpRanges struct{ *sftpsource.Source }

// TransferStats implements source.StatsReporter.
func (s sftpRanges) TransferStats() source.Stats {
	st := s.Stats()
	return source.Stats{Requests: st.Requests, Ranges: st.Ranges, Overhead: st.Overhead}
}
