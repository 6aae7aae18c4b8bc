package zsyncpipe

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// A Transport reads files at URLs of one scheme: the target's missing
// ranges for Sync, and whole control files for LoadControl.
//
// zsyncpipe has transports of its own for http and https URLs (package
// httpsource, configured by the HTTP options) and for file URLs and local
// paths. Others — sftp:// from package sftpsource, for one — are passed per
// call in SyncOptions.Transports and LoadOptions.Transports, keyed by
// scheme; there is no global registry. A Transport given for a built-in
// scheme replaces the built-in one.
type Transport interface {
	// OpenRanges returns a source of byte ranges of the file at u, which
	// should be size bytes long; a file of another length is an error (a
	// negative size accepts any length: the mirror reads pack files so). If
	// the source implements io.Closer, it is closed when the sync ends.
	OpenRanges(ctx context.Context, u *url.URL, size int64) (source.RangeSource, error)
	// Get reads the whole file at u, at most opts.MaxSize bytes (a larger
	// file is an error). A transport that can tell the file has not been
	// modified after opts.IfModifiedSince answers with NotModified set
	// and no body; others may ignore IfModifiedSince.
	Get(ctx context.Context, u *url.URL, opts GetOptions) (*Fetched, error)
}

// Transports maps URL schemes ("sftp") to the Transport for them.
type Transports map[string]Transport

// GetOptions configures Transport.Get.
type GetOptions struct {
	// IfModifiedSince, when not zero, asks for the file only if it was
	// modified after this time.
	IfModifiedSince time.Time
	// MaxSize is the largest file accepted.
	MaxSize int64
}

// Fetched is a whole file read by Transport.Get.
type Fetched struct {
	// Body is the content; nil when NotModified.
	Body []byte
	// URL is where the body came from, after redirects: relative URLs in
	// the file resolve against it.
	URL *url.URL
	// ModTime is the file's modification time; zero when unknown.
	ModTime time.Time
	// NotModified reports that the file has not been modified after
	// GetOptions.IfModifiedSince.
	NotModified bool
	// Date is when the server produced the answer (HTTP's Date header);
	// zero when unknown.
	Date time.Time
}

// Validator returns the ModTime to send as If-Modified-Since the next
// time, or zero when ModTime cannot tell a later change apart: times in
// If-Modified-Since are whole seconds, so a file served within the second
// it was modified in may change again in that second and still be
// reported unchanged (RFC 9110 §8.8.2.2 calls such a Last-Modified weak).
// The time of serving is Date, or the local clock when the server sent
// none.
func (f *Fetched) Validator() time.Time {
	served := f.Date
	if served.IsZero() {
		served = time.Now()
	}
	if f.ModTime.IsZero() || served.Sub(f.ModTime) < time.Second {
		return time.Time{}
	}
	return f.ModTime
}

// transport returns the Transport for scheme: one of ts, or a built-in one;
// nil when there is none.
func transport(ts Transports, httpOpts httpsource.Options, scheme string) Transport {
	if t, ok := ts[scheme]; ok {
		return t
	}
	switch scheme {
	case "http", "https":
		return httpTransport{httpOpts}
	case "file", "":
		return fileTransport{}
	}
	return nil
}

// httpTransport is the built-in transport of http and https URLs.
type httpTransport struct{ opts httpsource.Options }

func (t httpTransport) OpenRanges(ctx context.Context, u *url.URL, size int64) (source.RangeSource, error) {
	s, err := httpsource.New(u.String(), t.opts)
	if err != nil {
		return nil, err
	}
	return httpRanges{s}, nil
}

func (t httpTransport) Get(ctx context.Context, u *url.URL, opts GetOptions) (*Fetched, error) {
	d, err := httpsource.Download(ctx, u.String(), t.opts, opts.IfModifiedSince)
	if err != nil {
		return nil, err
	}
	if int64(len(d.Body)) > opts.MaxSize {
		return nil, fmt.Errorf("GET %s: body of %d bytes exceeds the limit of %d", u.Redacted(), len(d.Body), opts.MaxSize)
	}
	return &Fetched{Body: d.Body, URL: d.FinalURL, ModTime: d.LastModified, NotModified: d.NotModified, Date: d.Date}, nil
}

// httpRanges is an httpsource.Source that drops its idle connections when
// closed.
type httpRanges struct{ *httpsource.Source }

// Close drops idle connections.
func (s httpRanges) Close() error {
	s.CloseIdleConnections()
	return nil
}

// fileTransport is the built-in transport of file URLs and local paths.
type fileTransport struct{}

func (fileTransport) OpenRanges(ctx context.Context, u *url.URL, size int64) (source.RangeSource, error) {
	fh, fi, err := osfile.OpenRegular(ctx, filepath.FromSlash(u.Path))
	if err != nil {
		return nil, err
	}
	if size >= 0 && fi.Size() != size {
		fh.Close()
		return nil, fmt.Errorf("%s does not have the target's length %d", u.Path, size)
	}
	return fileRanges{source.ReaderAt{R: fh}, fh}, nil
}

// Get reads the file; it ignores IfModifiedSince.
func (fileTransport) Get(ctx context.Context, u *url.URL, opts GetOptions) (*Fetched, error) {
	path := filepath.FromSlash(u.Path)
	// The control file may come from a pipe (<(curl …)) or a FIFO: open
	// and read it only as long as ctx lasts.
	fh, err := osfile.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	defer context.AfterFunc(ctx, func() { fh.SetReadDeadline(time.Now()) })()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(fh, opts.MaxSize+1))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(body)) > opts.MaxSize {
		return nil, fmt.Errorf("%s is larger than the limit of %d bytes", path, opts.MaxSize)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return &Fetched{Body: body, URL: &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}, ModTime: fi.ModTime()}, nil
}

// fileRanges is a local copy of the target serving its ranges.
type fileRanges struct {
	source.ReaderAt
	f *os.File
}

// Close closes the file.
func (s fileRanges) Close() error { return s.f.Close() }
