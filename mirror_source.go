package zsyncpipe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// remoteTree is a published tree read through a Transport: its index, its
// control files and its files, at URLs relative to its root.
type remoteTree struct {
	base *url.URL
	tr   Transport
	// shared is set for the built-in HTTP transport, whose sources share
	// one client: they are not closed after each file, so that its
	// connections stay alive across files.
	shared  bool
	traffic *traffic // counted for the built-in HTTP transport
	payload atomic.Int64
}

// openTree returns the tree published at raw: an http(s) URL, a file URL or
// a local directory, or a URL of a scheme of ts.
func openTree(raw string, ts Transports, opts httpsource.Options) (*remoteTree, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // a path, perhaps C:\…
		abs, aerr := filepath.Abs(raw)
		if aerr != nil {
			return nil, fmt.Errorf("tree %q: %w", raw, aerr)
		}
		u = &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	t := &remoteTree{base: u}
	if _, custom := ts[u.Scheme]; !custom && (u.Scheme == "http" || u.Scheme == "https") {
		// One client for every file, counting what it receives.
		var inner http.RoundTripper
		c := &http.Client{}
		if opts.Client != nil {
			*c = *opts.Client
			inner = c.Transport
		}
		if inner == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.ForceAttemptHTTP2 = true
			tr.MaxIdleConnsPerHost = 64 // many small files at once
			inner = tr
		}
		t.traffic = &traffic{}
		c.Transport = &countingTransport{inner: inner, t: t.traffic}
		opts.Client = c
		t.tr, t.shared = httpTransport{opts}, true
		return t, nil
	}
	t.tr = transport(ts, opts, u.Scheme)
	if t.tr == nil {
		return nil, fmt.Errorf("tree URL %q: no transport for scheme %q: %w", raw, u.Scheme, ErrUsage)
	}
	return t, nil
}

// url returns the URL of the file at rel, a checked relative path.
func (t *remoteTree) url(rel string) *url.URL {
	return t.base.ResolveReference(&url.URL{Path: rel})
}

// get reads a whole small file of the tree: the index or a control file.
func (t *remoteTree) get(ctx context.Context, rel string, since time.Time, maxSize int64) (*Fetched, error) {
	f, err := t.tr.Get(ctx, t.url(rel), GetOptions{IfModifiedSince: since, MaxSize: maxSize})
	if err == nil {
		t.payload.Add(int64(len(f.Body)))
	}
	return f, err
}

// ranges opens a source of byte ranges of the file at rel; done releases it.
func (t *remoteTree) ranges(ctx context.Context, rel string, size int64) (src source.RangeSource, done func(), err error) {
	src, err = t.tr.OpenRanges(ctx, t.url(rel), size)
	if err != nil {
		return nil, nil, err
	}
	return src, func() {
		if c, ok := src.(io.Closer); ok && !t.shared {
			c.Close()
		}
	}, nil
}

// stats returns the requests made and the bytes received: counted on the
// wire for HTTP, the payload otherwise.
func (t *remoteTree) stats(fetched int64) (requests, bytes int64) {
	if t.traffic != nil {
		return t.traffic.requests.Load(), t.traffic.bytes.Load()
	}
	return 0, t.payload.Load() + fetched
}

// close drops the idle connections of the built-in HTTP client.
func (t *remoteTree) close() {
	if h, ok := t.tr.(httpTransport); ok && t.shared {
		h.opts.Client.CloseIdleConnections()
	}
}

// traffic counts the requests and bytes of an HTTP client.
type traffic struct {
	requests, bytes atomic.Int64
}

// countingTransport counts the requests and the bytes received: the status
// line and headers (as they were on the wire, near enough) and the body.
type countingTransport struct {
	inner http.RoundTripper
	t     *traffic
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.t.requests.Add(1)
	resp, err := c.inner.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	n := int64(len(resp.Proto) + len(resp.Status) + 4)
	for k, vs := range resp.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	c.t.bytes.Add(n + 2)
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.t.bytes}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
