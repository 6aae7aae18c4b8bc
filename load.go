package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

// DefaultMaxControlSize is the largest control file LoadControl accepts
// unless LoadOptions.MaxSize says otherwise: 256 MiB, the control file of
// a target of about 80 GiB in 4 KiB blocks.
const DefaultMaxControlSize = httpsource.MaxDownloadSize

// LoadOptions configures LoadControl.
type LoadOptions struct {
	// Keep, if set, is the path of a saved copy of the control file
	// (zsync's -k). A remote control file is then asked for only if it is
	// newer than the copy (If-Modified-Since), the copy is used when the
	// server says it has not changed, and otherwise the new control file is
	// saved there (atomically, with the server's modification time). A
	// local control file is copied there.
	Keep string
	// BaseURL, if set, is the URL or path that relative URLs of the control
	// file resolve against (zsync's -u), instead of the control file's own
	// location.
	BaseURL string
	// MaxSize is the largest control file accepted;
	// DefaultMaxControlSize when zero or negative. HTTP downloads are
	// capped at httpsource.MaxDownloadSize whatever the value.
	MaxSize int64
	// HTTP configures the built-in http and https transport: credentials,
	// retries, timeouts, the client (whose policy follows redirects).
	HTTP httpsource.Options
	// Transports reads control files at URLs of further schemes.
	Transports Transports
}

// Control is a control file loaded by LoadControl.
type Control struct {
	// File is the parsed control file.
	File *control.File
	// Raw holds the control file's bytes as read.
	Raw []byte
	// Location is where the control file came from: its URL after
	// redirects, or its absolute path.
	Location string
	// BaseURL is the directory (URL or path) that the control file's
	// relative URLs resolve against: pass it as SyncOptions.BaseURL.
	BaseURL string
	// NotModified reports that LoadOptions.Keep was up to date and was
	// used instead of a download.
	NotModified bool
}

// LoadControl reads and parses the control file at location: a local path,
// a file, http or https URL, or a URL of a scheme in opts.Transports.
//
// Errors wrap ErrFetch when a remote control file could not be downloaded,
// and a *control.FormatError when it is malformed.
func LoadControl(ctx context.Context, location string, opts LoadOptions) (*Control, error) {
	maxSize := opts.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxControlSize
	}
	u, remote := controlURL(location, opts.Transports)
	var got *Fetched
	var f *control.File
	if !remote {
		var err error
		got, f, err = readLocalControl(ctx, u, maxSize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", location, err)
		}
		if opts.Keep != "" {
			if err := atomicfile.WriteBytes(opts.Keep, 0o644, got.Body); err != nil {
				return nil, fmt.Errorf("save control file: %w", err)
			}
		}
	} else {
		t := transport(opts.Transports, opts.HTTP, u.Scheme)
		var since time.Time
		if opts.Keep != "" {
			if fi, err := os.Stat(opts.Keep); err == nil {
				since = fi.ModTime()
			}
		}
		var err error
		got, err = t.Get(ctx, u, GetOptions{IfModifiedSince: since, MaxSize: maxSize})
		if err != nil {
			return nil, fmt.Errorf("download control file: %w: %w", ErrFetch, err)
		}
		if err := keepCopy(opts.Keep, got); err != nil {
			return nil, err
		}
	}
	if f == nil {
		var err error
		if f, err = control.Read(bytes.NewReader(got.Body)); err != nil {
			// err says "control file: ..." already.
			return nil, fmt.Errorf("%s: %w", location, err)
		}
	}
	loc := got.URL.String()
	if got.URL.Scheme == "file" && !remote {
		loc = filepath.FromSlash(got.URL.Path)
	}
	base := opts.BaseURL
	if base == "" {
		base = loc
	}
	return &Control{File: f, Raw: got.Body, Location: loc, BaseURL: baseDir(base), NotModified: got.NotModified}, nil
}

// readLocalControl parses the local control file at u as a stream, keeping
// the bytes read: a file that is not a control file, or a huge one, is
// refused after the bytes that show it, never read whole.
func readLocalControl(ctx context.Context, u *url.URL, maxSize int64) (*Fetched, *control.File, error) {
	path := filepath.FromSlash(u.Path)
	// The control file may come from a pipe (<(curl …)) or a FIFO: open
	// and read it only as long as ctx lasts.
	fh, err := osfile.Open(ctx, path)
	if err != nil {
		return nil, nil, fmt.Errorf("read control file: %w", err)
	}
	defer fh.Close()
	defer context.AfterFunc(ctx, func() { fh.SetReadDeadline(time.Now()) })()
	fi, err := fh.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read control file: %w", err)
	}
	var raw bytes.Buffer
	f, err := control.Read(io.TeeReader(io.LimitReader(fh, maxSize+1), &raw))
	switch {
	case err != nil && int64(raw.Len()) > maxSize:
		return nil, nil, &control.FormatError{Err: fmt.Errorf("%w: larger than the limit of %d bytes", control.ErrTooLarge, maxSize)}
	case err != nil && ctx.Err() != nil:
		return nil, nil, fmt.Errorf("read control file: %w", ctx.Err())
	case err != nil:
		return nil, nil, err // "control file: ..." or an I/O error
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	return &Fetched{Body: raw.Bytes(), URL: &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}, ModTime: fi.ModTime()}, f, nil
}

// keepCopy reads the saved copy at keep into got when the server said it
// has not changed, and saves got there otherwise.
func keepCopy(keep string, got *Fetched) error {
	switch {
	case keep == "":
		return nil
	case got.NotModified:
		raw, err := osfile.ReadRegular(context.Background(), keep)
		if err != nil {
			return fmt.Errorf("read saved control file: %w", err)
		}
		got.Body = raw
		return nil
	}
	if err := atomicfile.WriteBytes(keep, 0o644, got.Body); err != nil {
		return fmt.Errorf("save control file: %w", err)
	}
	// The copy's time is sent as If-Modified-Since next time: a weak
	// Last-Modified (see Fetched.Validator) is set a second back, so that
	// the next request fetches the file again rather than risk a 304 for
	// a change made in the same second.
	if mt := got.Validator(); !mt.IsZero() {
		os.Chtimes(keep, mt, mt)
	} else if !got.ModTime.IsZero() {
		mt = got.ModTime.Add(-time.Second)
		os.Chtimes(keep, mt, mt)
	}
	return nil
}

// controlURL parses a control file's location. It reports whether the
// location is a URL of a known remote scheme; a local path (including one
// with a Windows drive letter) comes back as a file URL.
func controlURL(location string, ts Transports) (*url.URL, bool) {
	if u, err := url.Parse(location); err == nil && len(u.Scheme) > 1 {
		if u.Scheme == "file" {
			return u, false
		}
		if transport(ts, httpsource.Options{}, u.Scheme) != nil {
			return u, true
		}
	}
	return &url.URL{Scheme: "file", Path: filepath.ToSlash(location)}, false
}

// baseDir turns the URL or path that a control file came from (zsync's -u)
// into the base that SyncOptions.BaseURL wants: the directory that relative
// URLs resolve against. "srv/x.zsync" gives "srv", "file:///srv/x.zsync"
// gives "file:///srv/", and a path or URL ending in '/' is a directory
// already.
func baseDir(from string) string {
	if u, err := url.Parse(from); err == nil && len(u.Scheme) > 1 {
		return u.ResolveReference(&url.URL{Path: "./"}).String()
	}
	if strings.HasSuffix(from, "/") || strings.HasSuffix(from, string(filepath.Separator)) {
		return from
	}
	return filepath.Dir(from)
}
