// Package faultserver is an HTTP test server that serves one file with real
// Range support and with faults that can be switched on: dropped
// connections, ignored or refused ranges, corrupt bytes, 503 and 429
// answers, stalls, a file that changes under the client, TLS (and HTTP/2)
// and redirects.
//
// It listens on a loopback address only (it is built on net/http/httptest)
// and is meant for tests of HTTP range clients:
//
//	srv := faultserver.New(data, faultserver.Options{DropAfter: 1000, Faults: 2})
//	defer srv.Close()
//	// fetch srv.URL() with srv.Client() ...
//	if srv.Requests() != 3 { ... }
//
// In its normal mode the server behaves like http.ServeContent: a single
// range is answered with a 206 and a Content-Range, several ranges with a
// 206 multipart/byteranges body, an If-Range that does not match the current
// validator with a 200 and the whole file, If-Modified-Since with a 304.
package faultserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// DefaultPath is the path the file is served at when Options.Path is empty.
const DefaultPath = "/file"

// Options selects the server's behaviour. The zero value serves the file
// correctly over plain HTTP/1.1 at DefaultPath.
type Options struct {
	// Path is where the file is served; DefaultPath when empty.
	Path string

	// Faults limits the transient faults (DropAfter, Stall, Status503,
	// Status429) to the first Faults requests for the file; 0 means every
	// request.
	Faults int

	// DropAfter, when positive, closes the connection after DropAfter bytes
	// of the response body.
	DropAfter int64
	// Stall, when positive, stops sending for this long once half of the
	// response body has been written, then goes on.
	Stall time.Duration
	// Status503 answers 503 Service Unavailable.
	Status503 bool
	// Status429 answers 429 Too Many Requests.
	Status429 bool
	// RetryAfter is the Retry-After header sent with 503 and 429 answers
	// (seconds or an HTTP date); none when empty.
	RetryAfter string

	// IgnoreRanges answers every request with 200 and the whole file.
	IgnoreRanges bool
	// MaxRanges, when positive, refuses requests for more ranges than
	// this with RejectStatus.
	MaxRanges int
	// RejectStatus is the answer to a request with more than MaxRanges
	// ranges: 416 when zero; 200 serves the whole file instead.
	RejectStatus int
	// Coalesce answers a request for several ranges with one part that
	// spans from the first requested byte to the last one, as servers that
	// merge ranges may.
	Coalesce bool

	// CorruptRange, when not empty, names bytes of the file that are
	// inverted in every response that carries them.
	CorruptRange source.Range

	// ChangeAfter, when positive, replaces the file by different content
	// with a different ETag and Last-Modified after this many requests for
	// the file.
	ChangeAfter int
	// IgnoreIfRange serves ranges of the current content even when an
	// If-Range header names another version.
	IgnoreIfRange bool
	// NoETag leaves out the ETag header, so Last-Modified is the only
	// validator.
	NoETag bool
	// ModTime is the file's modification time; 2024-01-01 UTC when zero.
	ModTime time.Time

	// User and Password, when User is not empty, make the file require
	// Basic authentication (401 otherwise).
	User, Password string

	// TLS serves HTTPS with httptest's self-signed certificate; use
	// Server.Client to talk to it.
	TLS bool
	// HTTP2 enables HTTP/2 (with TLS only).
	HTTP2 bool
	// RedirectFrom, when not empty, is a path answered with 302 Found to
	// the file's path.
	RedirectFrom string

	// Delay, when positive, holds every answer for the file this long
	// before its headers, as a server at the end of a long round trip
	// would: requests a client sends in parallel are then seen in flight
	// together (Server.MaxInFlight).
	Delay time.Duration
}

// Request records one request received by the server.
type Request struct {
	Path            string
	Range           string
	IfRange         string
	IfModifiedSince string
	Authorization   string
	UserAgent       string
	Proto           string // "HTTP/1.1" or "HTTP/2.0"
	Status          int    // status code of the answer
}

// Server serves one file with the faults chosen in its Options. Its methods
// are safe for concurrent use.
type Server struct {
	srv  *httptest.Server
	opts Options
	data []byte
	done chan struct{}
	once sync.Once

	requests atomic.Int64 // requests for the file
	bytes    atomic.Int64 // response body bytes written
	inFlight atomic.Int64 // requests for the file being answered
	maxIn    atomic.Int64 // the most of them at once

	mu    sync.Mutex
	log   []Request
	conns map[string]bool // client addresses of requests for the file
}

// New starts a server that serves data with the given options. Close it when
// done.
func New(data []byte, opts Options) *Server {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.ModTime.IsZero() {
		opts.ModTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	s := &Server{opts: opts, data: data, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(opts.Path, s.serveFile)
	if opts.RedirectFrom != "" {
		mux.HandleFunc(opts.RedirectFrom, func(w http.ResponseWriter, r *http.Request) {
			s.record(r, http.StatusFound)
			http.Redirect(w, r, opts.Path, http.StatusFound)
		})
	}
	s.srv = httptest.NewUnstartedServer(mux)
	if opts.TLS {
		s.srv.EnableHTTP2 = opts.HTTP2
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	return s
}

// URL returns the URL of the file.
func (s *Server) URL() string { return s.srv.URL + s.opts.Path }

// RedirectURL returns the URL that redirects to the file; it is only
// answered when Options.RedirectFrom was set.
func (s *Server) RedirectURL() string { return s.srv.URL + s.opts.RedirectFrom }

// BaseURL returns the server's base URL, "http://127.0.0.1:port".
func (s *Server) BaseURL() string { return s.srv.URL }

// CertificatePEM returns the PEM encoding of the server's self-signed TLS
// certificate (with Options.TLS), for clients told to trust a CA file.
func (s *Server) CertificatePEM() []byte {
	c := s.srv.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Client returns a client configured for the server (it trusts the TLS
// certificate of a TLS server).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close stops the server, ends stalled responses and closes the idle
// connections of Client. It waits for running handlers and may be called
// more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Requests returns the number of requests received for the file.
func (s *Server) Requests() int64 { return s.requests.Load() }

// BytesServed returns the number of response body bytes written so far. A
// write is counted when it returns, which may be after the client has read
// the bytes: read it after Close for an exact figure.
func (s *Server) BytesServed() int64 { return s.bytes.Load() }

// MaxInFlight returns the largest number of requests for the file that the
// server was answering at the same time, from their arrival until their
// handler returned (the body handed to the connection).
func (s *Server) MaxInFlight() int64 { return s.maxIn.Load() }

// Connections returns the number of client connections (remote addresses)
// that sent requests for the file.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Log returns a copy of the requests received so far, in order of arrival.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Content returns the file content and its ETag as served after n requests:
// different from the original when Options.ChangeAfter is positive and n is
// at least ChangeAfter.
func (s *Server) Content(n int) (data []byte, etag string) {
	data = s.data
	changed := s.opts.ChangeAfter > 0 && n >= s.opts.ChangeAfter
	if changed {
		data = bytes.Clone(data)
		for i := range data {
			data[i] ^= 0x55
		}
	}
	sum := sha256.Sum256(data)
	etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	return data, etag
}

func (s *Server) record(r *http.Request, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Request{
		Path:            r.URL.Path,
		Range:           r.Header.Get("Range"),
		IfRange:         r.Header.Get("If-Range"),
		IfModifiedSince: r.Header.Get("If-Modified-Since"),
		Authorization:   r.Header.Get("Authorization"),
		UserAgent:       r.Header.Get("User-Agent"),
		Proto:           r.Proto,
		Status:          status,
	})
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	o := &s.opts
	n := int(s.requests.Add(1)) // this request's number, from 1
	faulty := o.Faults <= 0 || n <= o.Faults
	in := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.maxIn.Load(); in > m && !s.maxIn.CompareAndSwap(m, in); m = s.maxIn.Load() {
	}
	s.mu.Lock()
	if s.conns == nil {
		s.conns = make(map[string]bool)
	}
	s.conns[r.RemoteAddr] = true
	s.mu.Unlock()
	if o.Delay > 0 {
		t := time.NewTimer(o.Delay)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	if o.User != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != o.User || p != o.Password {
			s.record(r, http.StatusUnauthorized)
			w.Header().Set("WWW-Authenticate", `Basic realm="faultserver"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	if faulty && (o.Status503 || o.Status429) {
		code := http.StatusServiceUnavailable
		if !o.Status503 {
			code = http.StatusTooManyRequests
		}
		s.record(r, code)
		if o.RetryAfter != "" {
			w.Header().Set("Retry-After", o.RetryAfter)
		}
		http.Error(w, http.StatusText(code), code)
		return
	}

	data, etag := s.Content(n - 1)
	modTime := o.ModTime
	if o.ChangeAfter > 0 && n > o.ChangeAfter {
		modTime = modTime.Add(time.Hour)
	}
	lastMod := modTime.UTC().Format(http.TimeFormat)
	h := w.Header()
	h.Set("Last-Modified", lastMod)
	if !o.NoETag {
		h.Set("ETag", etag)
	}
	h.Set("Accept-Ranges", "bytes")

	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !modTime.Truncate(time.Second).After(t) {
			s.record(r, http.StatusNotModified)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}

	size := int64(len(data))
	rangeHdr := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && !o.IgnoreIfRange {
		if ir != lastMod && (o.NoETag || ir != etag || strings.HasPrefix(ir, "W/")) {
			rangeHdr = "" // validator mismatch: the whole file
		}
	}
	ranges, ok := parseRange(rangeHdr, size)
	if !ok {
		s.record(r, http.StatusRequestedRangeNotSatisfiable)
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	if o.MaxRanges > 0 && len(ranges) > o.MaxRanges {
		if o.RejectStatus != 0 && o.RejectStatus != http.StatusOK {
			s.record(r, o.RejectStatus)
			http.Error(w, "too many ranges", o.RejectStatus)
			return
		}
		if o.RejectStatus == 0 {
			s.record(r, http.StatusRequestedRangeNotSatisfiable)
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			http.Error(w, "too many ranges", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		ranges = nil
	}
	if o.IgnoreRanges {
		ranges = nil
	}
	if o.Coalesce && len(ranges) > 1 {
		ranges = []source.Range{{Start: ranges[0].Start, End: ranges[len(ranges)-1].End}}
	}

	fw := &faultWriter{w: w, s: s, done: s.done, ctx: r.Context().Done()}
	if faulty {
		fw.dropAfter = o.DropAfter
		fw.stall = o.Stall
	}
	switch len(ranges) {
	case 0:
		s.record(r, http.StatusOK)
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Type", "application/octet-stream")
		fw.stallAt = size / 2
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			s.writeData(fw, data, 0, size)
		}
	case 1:
		rg := ranges[0]
		s.record(r, http.StatusPartialContent)
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rg.Start, rg.End-1, size))
		h.Set("Content-Length", strconv.FormatInt(rg.Len(), 10))
		h.Set("Content-Type", "application/octet-stream")
		fw.stallAt = rg.Len() / 2
		w.WriteHeader(http.StatusPartialContent)
		if r.Method != http.MethodHead {
			s.writeData(fw, data, rg.Start, rg.End)
		}
	default:
		s.record(r, http.StatusPartialContent)
		var total int64
		for _, rg := range ranges {
			total += rg.Len()
		}
		fw.stallAt = total / 2
		mw := multipart.NewWriter(fw)
		h.Set("Content-Type", "multipart/byteranges; boundary="+mw.Boundary())
		w.WriteHeader(http.StatusPartialContent)
		if r.Method == http.MethodHead {
			return
		}
		for _, rg := range ranges {
			// Part writers write straight through to fw.
			_, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":  {"application/octet-stream"},
				"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", rg.Start, rg.End-1, size)},
			})
			if err != nil {
				return
			}
			s.writeData(fw, data, rg.Start, rg.End)
		}
		_ = mw.Close()
	}
}

// writeData writes data[start:end] to fw, inverting the bytes of
// Options.CorruptRange.
func (s *Server) writeData(fw *faultWriter, data []byte, start, end int64) {
	c := s.opts.CorruptRange
	if c.Len() <= 0 || c.End <= start || c.Start >= end {
		_, _ = fw.Write(data[start:end])
		return
	}
	buf := bytes.Clone(data[start:end])
	for i := max(c.Start, start); i < min(c.End, end); i++ {
		buf[i-start] ^= 0xff
	}
	_, _ = fw.Write(buf)
}

// faultWriter writes a response body, counting bytes and applying the
// connection-level faults. Multipart framing goes through it too, so
// DropAfter and Stall count all body bytes.
type faultWriter struct {
	w         http.ResponseWriter
	s         *Server
	done      <-chan struct{} // server closing
	ctx       <-chan struct{} // request over
	written   int64
	dropAfter int64
	stall     time.Duration
	stallAt   int64
	stalled   bool
}

func (f *faultWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p
		if f.stall > 0 && !f.stalled && f.written < f.stallAt && f.written+int64(len(chunk)) > f.stallAt {
			chunk = chunk[:f.stallAt-f.written]
		}
		if f.dropAfter > 0 && f.written+int64(len(chunk)) > f.dropAfter {
			chunk = chunk[:max(0, f.dropAfter-f.written)]
		}
		n, err := f.w.Write(chunk)
		f.written += int64(n)
		f.s.bytes.Add(int64(n))
		total += n
		p = p[n:]
		if err != nil {
			return total, err
		}
		if f.dropAfter > 0 && f.written >= f.dropAfter && len(p) > 0 {
			_ = http.NewResponseController(f.w).Flush()
			// The documented way to make net/http close the connection
			// (HTTP/1) or reset the stream (HTTP/2) without a complete body.
			panic(http.ErrAbortHandler)
		}
		if f.stall > 0 && !f.stalled && f.written >= f.stallAt {
			f.stalled = true
			_ = http.NewResponseController(f.w).Flush()
			t := time.NewTimer(f.stall)
			select {
			case <-t.C:
			case <-f.done:
				t.Stop()
				return total, errors.New("faultserver: closed")
			case <-f.ctx:
				t.Stop()
				return total, errors.New("faultserver: request gone")
			}
		}
	}
	return total, nil
}

var _ io.Writer = (*faultWriter)(nil)

// parseRange parses a Range header against a file of the given size. It
// returns nil ranges when the header is absent or malformed (serve the whole
// file) and ok false when no range is satisfiable.
func parseRange(h string, size int64) (ranges []source.Range, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if h == "" || !found {
		return nil, true
	}
	for _, part := range strings.Split(spec, ",") {
		part = textproto.TrimString(part)
		if part == "" {
			continue
		}
		a, b, found := strings.Cut(part, "-")
		if !found {
			return nil, true
		}
		a, b = textproto.TrimString(a), textproto.TrimString(b)
		var rg source.Range
		if a == "" { // suffix: the last b bytes
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil || n < 0 {
				return nil, true
			}
			if n == 0 {
				continue
			}
			rg = source.Range{Start: max(0, size-n), End: size}
		} else {
			start, err := strconv.ParseInt(a, 10, 64)
			if err != nil || start < 0 {
				return nil, true
			}
			end := size - 1
			if b != "" {
				end, err = strconv.ParseInt(b, 10, 64)
				if err != nil || end < start {
					return nil, true
				}
			}
			if start >= size {
				continue // unsatisfiable; dropped
			}
			rg = source.Range{Start: start, End: min(end, size-1) + 1}
		}
		ranges = append(ranges, rg)
	}
	if len(ranges) == 0 {
		return nil, false
	}
	return ranges, true
}
