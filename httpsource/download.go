package httpsource

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// MaxDownloadSize is the largest body Download accepts: 256 MiB, the
// control.MaxSize of a control file.
const MaxDownloadSize = 256 << 20

// File is a whole file fetched by Download.
type File struct {
	// Body is the content; nil when NotModified.
	Body []byte
	// FinalURL is the URL the body came from, after redirects. Relative
	// URLs found in the file (a control file's URL: lines) resolve against
	// it.
	FinalURL *url.URL
	// LastModified is the Last-Modified header; zero when absent.
	LastModified time.Time
	// ETag is the ETag header; empty when absent.
	ETag string
	// Date is the Date header, when the server produced the answer; zero
	// when absent.
	Date time.Time
	// NotModified reports a 304 answer to If-Modified-Since.
	NotModified bool
}

// Download fetches the whole small file at rawURL (a .zsync control file),
// following redirects, with the credentials, timeouts and retry policy of
// opts. When ifModifiedSince is not zero it is sent as If-Modified-Since,
// and a 304 answer returns a File with NotModified set. Bodies larger than
// MaxDownloadSize are an error.
func Download(ctx context.Context, rawURL string, opts Options, ifModifiedSince time.Time) (*File, error) {
	s, err := New(rawURL, opts)
	if err != nil {
		return nil, err
	}
	if opts.Client == nil {
		defer s.CloseIdleConnections() // nobody else will use this client
	}
	retry := newRetrier(s)
	for {
		f, err := s.download(ctx, ifModifiedSince)
		if err == nil {
			return f, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: %w", s, context.Cause(ctx))
		}
		if err := retry.wait(ctx, err); err != nil {
			return nil, err
		}
	}
}

func (s *Source) download(ctx context.Context, ifModifiedSince time.Time) (*File, error) {
	req, err := http.NewRequest(http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", s, err)
	}
	if !ifModifiedSince.IsZero() {
		req.Header.Set("If-Modified-Since", ifModifiedSince.UTC().Format(http.TimeFormat))
	}
	resp, finish, err := s.do(ctx, req, s.st.idleTimeout)
	if err != nil {
		return nil, err
	}
	defer finish()
	f := &File{FinalURL: resp.Request.URL, ETag: resp.Header.Get("ETag")}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			f.LastModified = t
		}
	}
	if d := resp.Header.Get("Date"); d != "" {
		if t, err := http.ParseTime(d); err == nil {
			f.Date = t
		}
	}
	switch code := resp.StatusCode; {
	case code == http.StatusNotModified:
		f.NotModified = true
		return f, nil
	case code == http.StatusOK:
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return nil, s.transient(resp, s.statusError(resp))
	default:
		return nil, s.statusError(resp)
	}
	if resp.ContentLength > MaxDownloadSize {
		return nil, fmt.Errorf("GET %s: body of %d bytes exceeds the limit of %d", s, resp.ContentLength, MaxDownloadSize)
	}
	body, err := readBody(resp.Body, resp.ContentLength, MaxDownloadSize)
	if err != nil {
		return nil, s.bodyError(err)
	}
	if len(body) > MaxDownloadSize {
		return nil, fmt.Errorf("GET %s: body exceeds the limit of %d bytes", s, MaxDownloadSize)
	}
	s.payloadBytes.Add(int64(len(body)))
	f.Body = body
	return f, nil
}

// readBody reads a response body of at most limit bytes (limit+1 when the
// body is longer: the caller refuses it). When the server announced the
// body's length, it is read into one buffer of that size: io.ReadAll grows
// its buffer from 512 bytes and leaves about as much again behind as
// garbage (1.5 MB for the 0.76 MB index of a Go toolchain tree).
func readBody(r io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size > limit {
		return io.ReadAll(io.LimitReader(r, limit+1))
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// Whatever follows (nothing, from net/http, which ends a body at its
	// Content-Length) is read as io.ReadAll would have.
	var one [1]byte
	switch _, err := io.ReadFull(r, one[:]); err {
	case io.EOF:
		return b, nil
	case nil:
	default:
		return nil, err
	}
	rest, err := io.ReadAll(io.LimitReader(r, limit-size))
	if err != nil {
		return nil, err
	}
	return append(append(b, one[0]), rest...), nil
}
