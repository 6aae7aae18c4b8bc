package httpsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/backoff"
)

// StatusError reports a response whose status the Source could not use.
type StatusError struct {
	Method     string
	URL        string // without credentials
	StatusCode int
	Status     string // e.g. "404 Not Found"
}

// Error returns "GET url: status".
func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Status)
}

// transientError is a failure worth retrying.
type transientError struct {
	err        error
	retryAfter time.Duration // asked for by the server; 0 when not
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// fnError carries an error returned by the caller's callback.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// rejectedError reports that the server refused a request for n ranges.
type rejectedError struct{ n int }

func (e *rejectedError) Error() string { return fmt.Sprintf("server refused %d ranges", e.n) }

var errStalled = errors.New("stalled")

func (s *Source) statusError(resp *http.Response) error {
	return &StatusError{Method: http.MethodGet, URL: s.String(), StatusCode: resp.StatusCode, Status: resp.Status}
}

// transient marks err as worth retrying, with the Retry-After of resp.
func (s *Source) transient(resp *http.Response, err error) error {
	return &transientError{err: err, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// parseRetryAfter returns the wait a Retry-After header asks for: seconds or
// an HTTP date; 0 when absent or malformed.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

// wait returns the pause before retry number failures (from 1).
func (st *settings) wait(failures int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, MaxRetryAfter)
	}
	return backoff.Delay(st.backoff, MaxBackoff, failures)
}

// retrier is the retry policy of one logical request (a ReadRanges call
// or a Download): it counts the failures since the last progress and
// decides whether, and after what pause, to try again.
type retrier struct {
	s        *Source
	failures int
	since    time.Time // start of the current wait without progress
}

func newRetrier(s *Source) retrier { return retrier{s: s, since: time.Now()} }

// progress records that the request moved forward: the failure budget and
// the wait without progress start again.
func (r *retrier) progress() {
	r.failures = 0
	r.since = time.Now()
}

// wait returns err itself when it is not transient, an error saying why
// the request gives up when the retries or MaxWait are used up, and
// otherwise nil after the pause before the next attempt.
func (r *retrier) wait(ctx context.Context, err error) error {
	var te *transientError
	if !errors.As(err, &te) {
		return err
	}
	st := &r.s.st
	r.failures++
	if r.failures > st.retries {
		return fmt.Errorf("%w (gave up after %d attempts, %v without progress)", te.err, r.failures, waited(r.since))
	}
	pause := st.wait(r.failures, te.retryAfter)
	if st.maxWait > 0 && time.Since(r.since)+pause > st.maxWait {
		return fmt.Errorf("%w (gave up after %d attempts: %v without progress, and the limit is %v)", te.err, r.failures, waited(r.since), st.maxWait)
	}
	r.s.retries.Add(1)
	if err := backoff.Sleep(ctx, pause); err != nil {
		return fmt.Errorf("GET %s: %w", r.s, err)
	}
	return nil
}

// do sends req with the Source's headers, credentials and stall watchdog,
// which abandons the request after idle without a byte (none when 0).
// The watchdog runs until finish is called; finish drains a little of the
// body, so that the connection can be reused, and closes it.
func (s *Source) do(ctx context.Context, req *http.Request, idle time.Duration) (resp *http.Response, finish func(), err error) {
	reqCtx, cancel := context.WithCancelCause(ctx)
	var timer *time.Timer
	if idle > 0 {
		stallErr := fmt.Errorf("%w: nothing received for %v", errStalled, idle)
		timer = time.AfterFunc(idle, func() { cancel(stallErr) })
	}
	stop := func() {
		if timer != nil {
			timer.Stop()
		}
		cancel(nil)
	}
	req = req.WithContext(reqCtx)
	req.Header.Set("User-Agent", s.st.userAgent)
	s.st.authorize(req)
	s.requests.Add(1)
	s.headerBytes.Add(headerSize(req.Header) + int64(len(req.Method)+len(req.URL.RequestURI())+len(req.URL.Host)+20))

	resp, err = s.st.client.Do(req)
	if err != nil {
		stop()
		return nil, nil, s.transportError(ctx, reqCtx, err)
	}
	s.headerBytes.Add(headerSize(resp.Header) + int64(len(resp.Status)+11))
	cb := &countingBody{rc: resp.Body, s: s, timer: timer, idle: idle, ctx: reqCtx}
	resp.Body = cb
	finish = func() {
		// A whole-file answer left unread is not drained: a new
		// connection is cheaper than the rest of the file.
		if resp.StatusCode != http.StatusOK || resp.ContentLength >= 0 && resp.ContentLength-cb.n <= 64<<10 {
			_, _ = io.CopyN(io.Discard, cb, 64<<10)
		}
		_ = cb.Close()
		stop()
	}
	return resp, finish, nil
}

// transportError classifies an error of Client.Do.
func (s *Source) transportError(ctx, reqCtx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	wrapped := fmt.Errorf("GET %s: %w", s, err)
	if ctx.Err() != nil {
		return wrapped
	}
	if cause := context.Cause(reqCtx); errors.Is(cause, errStalled) {
		return &transientError{err: fmt.Errorf("GET %s: %w", s, cause)}
	}
	var (
		re  *redirectError
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	if errors.As(err, &re) || errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie) {
		return wrapped
	}
	return &transientError{err: wrapped}
}

// countingBody counts body bytes and feeds the stall watchdog.
type countingBody struct {
	rc    io.ReadCloser
	s     *Source
	timer *time.Timer
	idle  time.Duration
	ctx   context.Context
	n     int64 // bytes read
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n += int64(n)
		b.s.bodyBytes.Add(int64(n))
		if b.timer != nil {
			b.timer.Reset(b.idle)
		}
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); errors.Is(cause, errStalled) {
			err = cause
		}
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// headerSize estimates the HTTP/1.1 wire size of h.
func headerSize(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}
