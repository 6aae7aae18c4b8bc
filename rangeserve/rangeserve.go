// Package rangeserve serves files over HTTP with the Range behaviour that
// zsync clients need: single and multi-range answers (with the CRLF before
// the first boundary that zsync 0.6.2 requires), If-Range, strong ETags,
// Last-Modified, HEAD and 304 answers.
//
// ServeContent wraps http.ServeContent; Handler serves a whole directory
// tree through an os.Root, so no request, symlink or ".." can reach a file
// outside it.
package rangeserve

import (
	"bufio"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// ServeContent is http.ServeContent whose multipart/byteranges answers
// start with CRLF, as nginx's and Apache's do. zsync 0.6.2 needs it before
// the first boundary (RFC 2046 makes it optional and Go's mime/multipart
// omits it); without it zsync repeats the same request forever. Set an
// ETag header before calling it to have If-Range and If-None-Match honoured.
//
// A content that is an io.ReaderAt (such as *os.File) is read with ReadAt,
// without a seek per range, and multi-range bodies are written through a
// 64 KiB buffer, so that a typical answer (tens of small ranges) costs a
// few system calls rather than several per range.
func ServeContent(w http.ResponseWriter, r *http.Request, name string, modtime time.Time, content io.ReadSeeker) {
	if ra, ok := content.(io.ReaderAt); ok {
		if size, err := content.Seek(0, io.SeekEnd); err == nil {
			content = &readerAt{ra: ra, size: size}
		} else {
			content.Seek(0, io.SeekStart)
		}
	}
	cw := &crlfPreamble{ResponseWriter: w}
	http.ServeContent(cw, r, name, modtime, content)
	if cw.bw != nil {
		cw.bw.Flush()
	}
}

// readerAt is an io.ReadSeeker over an io.ReaderAt that keeps its offset
// in memory.
type readerAt struct {
	ra        io.ReaderAt
	off, size int64
}

func (r *readerAt) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.ra.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *readerAt) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("rangeserve: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("rangeserve: negative position")
	}
	r.off = offset
	return offset, nil
}

// crlfPreamble inserts the CRLF at the start of a multipart/byteranges body
// and buffers that body.
type crlfPreamble struct {
	http.ResponseWriter
	bw *bufio.Writer
}

func (w *crlfPreamble) Write(p []byte) (int, error) {
	if w.bw != nil {
		return w.bw.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *crlfPreamble) WriteHeader(code int) {
	h := w.Header()
	if code != http.StatusPartialContent || !strings.HasPrefix(h.Get("Content-Type"), "multipart/byteranges") {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
		h.Set("Content-Length", strconv.FormatInt(n+2, 10))
	}
	w.ResponseWriter.WriteHeader(code)
	w.bw = bufio.NewWriterSize(w.ResponseWriter, 64<<10)
	w.bw.WriteString("\r\n")
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *crlfPreamble) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ETag returns a strong entity tag for a file from its modification time
// and size, in nginx's form: "<mtime seconds hex>-<size hex>", with the
// nanoseconds added so that a rewrite within a second changes it.
func ETag(fi fs.FileInfo) string {
	mt := fi.ModTime()
	return fmt.Sprintf(`"%x-%x-%x"`, mt.Unix(), fi.Size(), mt.Nanosecond())
}

// HandlerOptions configures Handler.
type HandlerOptions struct {
	// NoListing answers 404 for directories instead of listing them.
	NoListing bool
	// CacheControl, if set, is sent with every file.
	CacheControl string
}

// Handler serves the tree of root for GET and HEAD: files with
// ServeContent and an ETag, directories as a plain HTML listing (with a
// redirect to the trailing slash).
func Handler(root *os.Root, opts HandlerOptions) http.Handler {
	return &handler{root: root, opts: opts}
}

type handler struct {
	root *os.Root
	opts HandlerOptions
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	name := strings.TrimPrefix(p, "/")
	if name == "" {
		name = "."
	}
	f, err := h.root.Open(name)
	if err != nil {
		httpError(w, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		httpError(w, err)
		return
	}
	if fi.IsDir() {
		if h.opts.NoListing {
			http.NotFound(w, r)
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, path.Base(p)+"/", http.StatusMovedPermanently)
			return
		}
		list(w, r, f)
		return
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", ETag(fi))
	if h.opts.CacheControl != "" {
		w.Header().Set("Cache-Control", h.opts.CacheControl)
	}
	if strings.HasSuffix(name, ".zsync") {
		w.Header().Set("Content-Type", "application/x-zsync")
	}
	ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

func httpError(w http.ResponseWriter, err error) {
	switch {
	case os.IsNotExist(err):
		http.Error(w, "404 page not found", http.StatusNotFound)
	case os.IsPermission(err):
		http.Error(w, "403 forbidden", http.StatusForbidden)
	default:
		// Includes paths that os.Root refuses: escaping symlinks.
		http.Error(w, "404 page not found", http.StatusNotFound)
	}
}

// list writes a minimal listing of the directory d.
func list(w http.ResponseWriter, r *http.Request, d *os.File) {
	ents, err := d.ReadDir(-1)
	if err != nil {
		http.Error(w, "cannot list the directory", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	fmt.Fprintf(w, "<!doctype html>\n<title>%s</title>\n<pre>\n", html.EscapeString(r.URL.Path))
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		fmt.Fprintf(w, "<a href=\"%s\">%s</a>\n", (&url.URL{Path: "./" + n}).String(), html.EscapeString(n))
	}
	fmt.Fprint(w, "</pre>\n")
}
