package httpsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// ErrChanged is wrapped by the errors that report that the remote file is not
// the one earlier responses came from: its ETag, Last-Modified or size
// changed.
var ErrChanged = source.ErrChanged

// Stats counts the traffic of a Source.
type Stats struct {
	Requests int64 // HTTP requests sent, retries included
	Ranges   int64 // ranges asked for in Range headers, after merging
	Retries  int64 // attempts made after a failed one

	// BodyBytes is the number of response body bytes received,
	// PayloadBytes the number of bytes delivered to callers; their
	// difference is the overhead of gaps, multipart framing, refused and
	// repeated transfers.
	BodyBytes, PayloadBytes int64

	// HeaderBytes estimates the size of request and response headers in
	// HTTP/1.1 form (HTTP/2 compresses them).
	HeaderBytes int64
}

// Source reads byte ranges of one remote file with HTTP Range requests. It
// implements source.RangeSource and is safe for concurrent use.
type Source struct {
	url *url.URL
	st  settings

	maxRanges atomic.Int64 // current ranges per request
	noRanges  atomic.Bool  // the server answered 200 to a single range
	stream    *bodyStream  // serves every call once noRanges is set
	sending   atomic.Int64 // range requests waiting for their answer
	closeOnce sync.Once

	// The first request goes alone: the others wait until its response
	// has given the validators for If-Range (or until it failed), so that
	// every later request can detect a file changed on the server.
	leader    atomic.Bool
	firstOnce sync.Once
	first     chan struct{} // closed once the first response is in

	mu       sync.Mutex
	known    bool   // the validators below come from a response
	etag     string // ETag of the first response, as sent
	lastMod  string // Last-Modified of the first response
	size     int64  // size of the file, -1 when unknown
	lastSeen string // validator for If-Range: strong ETag or Last-Modified

	requests, ranges, retries, bodyBytes, payloadBytes, headerBytes atomic.Int64
}

// New returns a Source for the file at rawURL, an http or https URL.
// Credentials in the URL are moved to the Credentials for its host.
func New(rawURL string, opts Options) (*Source, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("httpsource: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("httpsource: %s: not an http or https URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("httpsource: %s: no host", u.Redacted())
	}
	s := &Source{url: u, size: -1, first: make(chan struct{})}
	s.stream = newBodyStream(s)
	if s.st, err = opts.settings(u); err != nil {
		return nil, err
	}
	s.maxRanges.Store(int64(s.st.maxRanges))
	return s, nil
}

// String returns the URL of the file, without credentials.
func (s *Source) String() string { return s.url.Redacted() }

// Stats returns the traffic counted so far.
func (s *Source) Stats() Stats {
	return Stats{
		Requests:     s.requests.Load(),
		Ranges:       s.ranges.Load(),
		Retries:      s.retries.Load(),
		BodyBytes:    s.bodyBytes.Load(),
		PayloadBytes: s.payloadBytes.Load(),
		HeaderBytes:  s.headerBytes.Load(),
	}
}

// MaxRanges returns the current number of ranges per request, which starts
// at Options.MaxRanges and is halved each time the server refuses a request.
func (s *Source) MaxRanges() int { return int(s.maxRanges.Load()) }

// CloseIdleConnections closes the idle connections of the Source's client
// and ends a paused whole-file stream (see the package documentation).
func (s *Source) CloseIdleConnections() {
	s.closeOnce.Do(func() { close(s.stream.stop) })
	s.st.client.CloseIdleConnections()
}

// call is the state of one ReadRanges call.
type call struct {
	ranges []source.Range
	next   int // first range not yet delivered
	fn     func(source.Range, io.Reader) error
	retry  retrier
}

// ReadRanges fetches ranges, which must be sorted, non-empty and
// non-overlapping, and calls fn once per range, in order, with a reader of
// exactly r.Len() bytes. It returns fn's first error as is. Transient
// failures are retried with only the ranges not yet delivered; see the
// package documentation for the policy.
func (s *Source) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	if err := checkRanges(ranges); err != nil {
		return fmt.Errorf("httpsource: %s: %w", s, err)
	}
	if fn == nil {
		return fmt.Errorf("httpsource: %s: nil callback", s)
	}
	c := &call{ranges: ranges, fn: fn, retry: newRetrier(s)}
	for c.next < len(c.ranges) {
		before := c.next
		err := s.attempt(ctx, c)
		if c.next > before {
			c.retry.progress()
		}
		if err == nil {
			continue
		}
		var fe *fnError
		if errors.As(err, &fe) {
			return fe.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", s, context.Cause(ctx))
		}
		var rj *rejectedError
		if errors.As(err, &rj) {
			s.halve(rj.n)
			continue
		}
		if err := c.retry.wait(ctx, err); err != nil {
			return err
		}
	}
	return nil
}

// waited returns the time since t, rounded for a message.
func waited(t time.Time) time.Duration {
	return time.Since(t).Round(100 * time.Millisecond)
}

// idleFor returns the stall timeout of the next request of c: the
// IdleTimeout, or less when the MaxWait of c is nearly used up.
func (s *Source) idleFor(c *call) time.Duration {
	idle := s.st.idleTimeout
	if s.st.maxWait > 0 {
		left := max(s.st.maxWait-time.Since(c.retry.since), time.Millisecond)
		if idle <= 0 || left < idle {
			idle = left
		}
	}
	return idle
}

// checkRanges reports ranges that are not sorted, empty or overlapping.
func checkRanges(ranges []source.Range) error { return source.CheckRanges(ranges) }

// halve lowers the ranges per request to half of n, the number a server
// just refused, unless it is already lower.
func (s *Source) halve(n int) {
	want := int64(max(1, n/2))
	for {
		cur := s.maxRanges.Load()
		if cur <= want || s.maxRanges.CompareAndSwap(cur, want) {
			return
		}
	}
}

// plan merges the undelivered ranges of c into at most MaxRanges spans
// (all of them when all is set) and returns the spans and the index after
// the last range they cover.
func (s *Source) plan(c *call, all bool) (spans []source.Range, end int) {
	limit := int(s.maxRanges.Load())
	i := c.next
	for ; i < len(c.ranges); i++ {
		r := c.ranges[i]
		if n := len(spans); n > 0 && s.merge(spans[n-1], r) {
			spans[n-1].End = r.End
			continue
		}
		if !all && len(spans) == limit {
			break
		}
		spans = append(spans, r)
	}
	return spans, i
}

// merge reports whether r is fetched together with the span before it,
// prev: whether the gap between them costs no more than r as a part of its
// own (MergeGap fixed or, by default, PartOverhead).
func (s *Source) merge(prev, r source.Range) bool {
	gap := r.Start - prev.End
	switch {
	case s.st.mergeGap < 0:
		return false
	case s.st.mergeGap > 0:
		return gap <= s.st.mergeGap
	}
	s.mu.Lock()
	size := s.size
	s.mu.Unlock()
	return gap <= PartOverhead(r, size)
}

// PartOverhead estimates the bytes that r adds to a multi-range request
// and its response when it is a range, and a part, of its own, for a file
// of size bytes (-1 if unknown, then as many digits as r.End): ",a-b" in
// the Range header, and the part's framing in nginx's form,
//
//	"\r\n--" boundary (20 digits) "\r\nContent-Type: application/octet-stream"
//	"\r\nContent-Range: bytes a-b/size\r\n\r\n"
//
// (≈ 120 bytes of framing for a 225 MB file; Apache's is a little shorter,
// Go's net/http a little longer). Fetching a gap costs its length; so two
// ranges are worth fetching as one when their gap is at most this.
func PartOverhead(r source.Range, size int64) int64 {
	if size < 0 {
		size = r.End
	}
	digits := func(v int64) int64 { return int64(len(strconv.FormatInt(max(v, 0), 10))) }
	numbers := digits(r.Start) + 1 + digits(r.End-1) // "a-b"
	header := 1 + numbers                            // ",a-b"
	const framing = len("\r\n--") + 20 + len("\r\nContent-Type: application/octet-stream") +
		len("\r\nContent-Range: bytes ") + len("/") + len("\r\n\r\n")
	return header + int64(framing) + numbers + digits(size)
}

func rangeHeader(spans []source.Range) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i, r := range spans {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(r.Start, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatInt(r.End-1, 10))
	}
	return b.String()
}

// attempt sends one request for the next ranges of c and delivers what the
// response holds.
func (s *Source) attempt(ctx context.Context, c *call) error {
	select {
	case <-s.first:
	default:
		if s.leader.CompareAndSwap(false, true) {
			defer s.openGate() // also when this request fails
		} else {
			select {
			case <-s.first:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if s.noRanges.Load() {
		return s.stream.serve(ctx, c, nil, nil, nil)
	}
	spans, batchEnd := s.plan(c, false)

	req, err := http.NewRequest(http.MethodGet, s.url.String(), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", s, err)
	}
	req.Header.Set("Accept-Encoding", "identity") // byte offsets must be the file's
	req.Header.Set("Range", rangeHeader(spans))
	s.ranges.Add(int64(len(spans)))
	s.mu.Lock()
	if s.lastSeen != "" {
		req.Header.Set("If-Range", s.lastSeen)
	}
	s.mu.Unlock()

	// While this request waits for its answer, a whole-file stream that
	// starts does not read past the ranges it asks for (see bodyStream).
	s.sending.Add(1)
	var sentOnce sync.Once
	answered := func() { sentOnce.Do(func() { s.sending.Add(-1) }) }
	defer answered()
	resp, finish, err := s.do(ctx, req, s.idleFor(c))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		answered() // only a 200 may join the stream
	}
	handed := false // the body went to the whole-file stream
	defer func() {
		if !handed {
			finish()
		}
	}()

	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent:
		return s.readPartial(resp, c, batchEnd)

	case code == http.StatusOK:
		// The whole file. After several ranges, the server may still
		// answer single ones (nginx's max_ranges): step down to one range
		// per request at once, dropping this body. After a single range,
		// it ignores ranges: this body becomes the stream that serves
		// every call from now on.
		if len(spans) > 1 {
			s.maxRanges.Store(1)
		}
		if err := s.checkValidators(resp, resp.ContentLength); err != nil {
			return err
		}
		if len(spans) > 1 {
			return &rejectedError{1}
		}
		s.noRanges.Store(true)
		handed = true
		return s.stream.serve(ctx, c, resp, finish, answered)

	case code == http.StatusRequestedRangeNotSatisfiable:
		if len(spans) > 1 {
			return &rejectedError{len(spans)}
		}
		if _, _, total, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil && total >= 0 {
			if err := s.checkSize(total); err != nil {
				return err
			}
		}
		return s.statusError(resp)

	case len(spans) > 1 && (code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge ||
		code == http.StatusRequestURITooLong || code == http.StatusRequestHeaderFieldsTooLarge ||
		code == http.StatusNotImplemented):
		return &rejectedError{len(spans)}

	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return s.transient(resp, s.statusError(resp))

	default:
		return s.statusError(resp)
	}
}

// readPartial handles a 206 response, single-part or multipart.
func (s *Source) readPartial(resp *http.Response, c *call, batchEnd int) error {
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return s.transient(resp, fmt.Errorf("GET %s: 206 response: %w", s, err))
		}
		if err := s.checkValidators(resp, total); err != nil {
			return err
		}
		if resp.ContentLength >= 0 && resp.ContentLength != end-start {
			return s.transient(resp, fmt.Errorf("GET %s: Content-Length %d does not match Content-Range %d-%d", s, resp.ContentLength, start, end-1))
		}
		if err := s.deliver(c, resp.Body, start, end); err != nil {
			return err
		}
	} else {
		if err := s.checkValidators(resp, -1); err != nil {
			return err
		}
		if params["boundary"] == "" {
			return s.transient(resp, fmt.Errorf("GET %s: multipart response without boundary", s))
		}
		br := newByteranges(resp.Body, params["boundary"])
		for c.next < batchEnd {
			start, end, total, part, err := br.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return s.transient(resp, fmt.Errorf("GET %s: reading multipart response: %w", s, err))
			}
			if err := s.checkSize(total); err != nil {
				return err
			}
			if err := s.deliver(c, part, start, end); err != nil {
				return err
			}
		}
	}
	if c.next < batchEnd {
		r := c.ranges[c.next]
		return s.transient(resp, fmt.Errorf("GET %s: response lacks requested bytes %d-%d", s, r.Start, r.End-1))
	}
	return nil
}

// deliver calls fn for the undelivered ranges of c that lie within the part
// [start, end) of the file, read from r positioned at start. The part must
// hold the next undelivered range. The bytes after the last range delivered
// are read and must number exactly what Content-Range said.
func (s *Source) deliver(c *call, r io.Reader, start, end int64) error {
	if end <= start {
		return &transientError{err: fmt.Errorf("GET %s: part without a byte range", s)}
	}
	if c.next >= len(c.ranges) {
		return &transientError{err: fmt.Errorf("GET %s: unexpected part %d-%d", s, start, end-1)}
	}
	if want := c.ranges[c.next]; start > want.Start || end < want.End {
		return &transientError{err: fmt.Errorf("GET %s: got bytes %d-%d, want a part holding %d-%d", s, start, end-1, want.Start, want.End-1)}
	}
	pos := start
	for c.next < len(c.ranges) && c.ranges[c.next].End <= end {
		rg := c.ranges[c.next]
		if skip := rg.Start - pos; skip > 0 {
			if n, err := io.CopyN(io.Discard, r, skip); err != nil {
				return s.bodyError(fmt.Errorf("body ends after %d bytes of a %d-byte gap: %w", n, skip, noEOF(err)))
			}
		}
		er := &exactReader{r: r, n: rg.Len()}
		err := c.fn(rg, er)
		if er.err != nil {
			return s.bodyError(er.err)
		}
		if err != nil {
			return &fnError{err}
		}
		if er.n > 0 { // fn did not read it all
			if _, err := io.Copy(io.Discard, er); err != nil {
				return s.bodyError(er.err)
			}
		}
		s.payloadBytes.Add(rg.Len())
		s.stream.markHanded(rg)
		c.next++
		pos = rg.End
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r, end-pos+1))
	if err != nil {
		return s.bodyError(err)
	}
	if n != end-pos {
		return &transientError{err: fmt.Errorf("GET %s: part %d-%d holds %d bytes, want %d", s, start, end-1, n+pos-start, end-start)}
	}
	return nil
}

// bodyError reports a failure of the network while reading a body.
func (s *Source) bodyError(err error) error {
	return &transientError{err: fmt.Errorf("GET %s: reading body: %w", s, err)}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// exactReader reads exactly n bytes of r and keeps the first error of r, so
// that a network failure is told apart from an error of the callback.
type exactReader struct {
	r   io.Reader
	n   int64
	err error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	k, err := e.r.Read(p)
	e.n -= int64(k)
	if err == io.EOF {
		if e.n > 0 {
			e.err = io.ErrUnexpectedEOF
			return k, e.err
		}
		err = nil
	}
	if err != nil {
		e.err = err
	}
	return k, err
}

// checkValidators compares the validators of resp with those of the first
// response and records them if this is the first. total is the file size
// the response states, -1 if none.
func (s *Source) checkValidators(resp *http.Response, total int64) error {
	etag := resp.Header.Get("ETag")
	lastMod := resp.Header.Get("Last-Modified")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known {
		switch {
		case s.etag != "" && etag != "":
			if etag != s.etag {
				return fmt.Errorf("GET %s: %w: ETag %s, was %s", s, ErrChanged, etag, s.etag)
			}
		case s.lastMod != "" && lastMod != "" && lastMod != s.lastMod:
			return fmt.Errorf("GET %s: %w: Last-Modified %s, was %s", s, ErrChanged, lastMod, s.lastMod)
		}
	} else {
		s.known = true
		s.etag, s.lastMod = etag, lastMod
		switch {
		case etag != "" && !strings.HasPrefix(etag, "W/"):
			s.lastSeen = etag
		case lastMod != "":
			s.lastSeen = lastMod
		}
		defer s.openGate()
	}
	return s.checkSizeLocked(total)
}

// openGate lets the requests waiting for the first response go.
func (s *Source) openGate() { s.firstOnce.Do(func() { close(s.first) }) }

func (s *Source) checkSize(total int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkSizeLocked(total)
}

func (s *Source) checkSizeLocked(total int64) error {
	if total < 0 {
		return nil
	}
	if s.size >= 0 && total != s.size {
		return fmt.Errorf("GET %s: %w: size %d, was %d", s, ErrChanged, total, s.size)
	}
	s.size = total
	return nil
}

// parseContentRange parses "bytes a-b/total" (total may be "*") or
// "bytes */total" and returns [start, end) and total (-1 when unknown); for
// the unsatisfied form start and end are 0.
func parseContentRange(h string) (start, end, total int64, err error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	rng, tot, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
		}
	}
	if rng == "*" {
		return 0, 0, total, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || last < start || (total >= 0 && last >= total) {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	return start, last + 1, total, nil
}
