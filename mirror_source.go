package zsyncpipe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// TreeSource is where Mirror reads a published tree from. Paths are
// slash-separated and relative to the tree's root; Mirror checks them before
// asking. Implementations must be safe for concurrent use.
type TreeSource interface {
	// Get fetches a whole small file of the tree: the tree index or a
	// control file. When since is not zero and the file has not changed
	// since then, it may return a File with NotModified set and no body.
	Get(ctx context.Context, rel string, since time.Time) (*httpsource.File, error)
	// Ranges returns a source of byte ranges of the file at rel, for the
	// blocks missing locally and for files fetched whole.
	Ranges(rel string) (stages.RangeSource, error)
}

// TrafficStats is what a TreeSource may report, through a
// Traffic() TrafficStats method, for the summary of a mirror.
type TrafficStats struct {
	// Requests counts the requests sent.
	Requests int64
	// Bytes counts everything received: response headers and bodies.
	Bytes int64
}

// NewHTTPTree returns the TreeSource of a tree published at rawURL, the
// http(s) URL of its root directory. The requests of every file share one
// client, so connections are kept alive across files (and HTTP/2 is used
// where the server offers it).
func NewHTTPTree(rawURL string, opts httpsource.Options) (TreeSource, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tree URL %q: want an http or https URL: %w", rawURL, ErrUsage)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	t := &httpTree{base: u, opts: opts}
	var inner http.RoundTripper
	if opts.Client != nil {
		c := *opts.Client
		inner = c.Transport
		if inner == nil {
			inner = http.DefaultTransport
		}
		t.client = &c
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = true
		tr.MaxIdleConnsPerHost = 64 // many small files at once
		inner = tr
		t.client = &http.Client{}
	}
	t.client.Transport = &countingTransport{inner: inner, t: t}
	t.opts.Client = t.client
	return t, nil
}

// httpTree is a tree published on a web server.
type httpTree struct {
	base     *url.URL
	opts     httpsource.Options
	client   *http.Client
	requests atomic.Int64
	bytes    atomic.Int64
}

// url returns the URL of the file at rel.
func (t *httpTree) url(rel string) string {
	return t.base.ResolveReference(&url.URL{Path: rel}).String()
}

// Get implements TreeSource.
func (t *httpTree) Get(ctx context.Context, rel string, since time.Time) (*httpsource.File, error) {
	return httpsource.Download(ctx, t.url(rel), t.opts, since)
}

// Ranges implements TreeSource.
func (t *httpTree) Ranges(rel string) (stages.RangeSource, error) {
	return httpsource.New(t.url(rel), t.opts)
}

// Traffic reports the requests made and the bytes received.
func (t *httpTree) Traffic() TrafficStats {
	return TrafficStats{Requests: t.requests.Load(), Bytes: t.bytes.Load()}
}

// CloseIdleConnections closes the kept-alive connections.
func (t *httpTree) CloseIdleConnections() { t.client.CloseIdleConnections() }

// countingTransport counts the requests and the bytes received: the status
// line and headers (as they were on the wire, near enough) and the body.
type countingTransport struct {
	inner http.RoundTripper
	t     *httpTree
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
