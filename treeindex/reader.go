package treeindex

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/zsyncpipe/zsyncpipe/internal/prefault"
)

// ReaderOptions configures a Reader.
type ReaderOptions struct {
	// MaxEntries bounds the number of entries; 0 means DefaultMaxEntries.
	MaxEntries int64
	// Each, if set, is called by ReadAll with each entry as soon as it is
	// read and checked on its own (its path, fields, order), before the
	// index is verified whole: a caller may start work that the rest of
	// the index cannot make wrong (reading local files, say) while the
	// index is still being read. It must not keep e.
	Each func(e *Entry)
}

// Reader reads an index entry by entry. It verifies, as it goes, every
// entry, their order, and at the end the trailer's count and content hash:
// Next returns io.EOF only for a complete, intact index. A caller that must
// not act on a truncated or corrupted index acts only after io.EOF.
type Reader struct {
	sc    *bufio.Scanner
	gz    *gzip.Reader
	hdr   Header
	sum   hash.Hash
	ord   order
	packs packContext // of "pack"
	ctls  packContext // of "cpack"
	sums  packContext // of "sums"
	max   int64
	final []byte
	err   error
	l     entryLine // the line being decoded
}

// NewReader reads the header of the index from r, gzip-compressed or not.
func NewReader(r io.Reader, opts ReaderOptions) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	ir := &Reader{sum: sha256.New(), max: opts.MaxEntries, ctls: packContext{def: PackRaw}, sums: packContext{def: PackRaw}}
	if ir.max <= 0 {
		ir.max = DefaultMaxEntries
	}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrFormat, err)
		}
		ir.gz = gz
		ir.sc = bufio.NewScanner(gz)
	} else {
		ir.sc = bufio.NewScanner(br)
	}
	ir.sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line, err := ir.line()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty", ErrFormat)
		}
		return nil, err
	}
	var hl headerLine
	if err := json.Unmarshal(line, &hl); err != nil || hl.Version == nil {
		return nil, fmt.Errorf("%w: the first line is not a %s header", ErrFormat, magic)
	}
	if *hl.Version < 1 || *hl.Version > Version {
		return nil, fmt.Errorf("%w: version %d (this reader knows 1 to %d)", ErrVersion, *hl.Version, Version)
	}
	ir.hdr = Header{Version: *hl.Version, Generation: hl.Generation, Small: hl.Small, Legacy: hl.Legacy}
	if hl.Created != "" {
		t, err := time.Parse(time.RFC3339Nano, hl.Created)
		if err != nil {
			return nil, fmt.Errorf("%w: header: created %q: %v", ErrFormat, hl.Created, err)
		}
		ir.hdr.Created = t
	}
	return ir, nil
}

// line returns the next line without its newline, or io.EOF.
func (r *Reader) line() ([]byte, error) {
	if r.sc.Scan() {
		return r.sc.Bytes(), nil
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: a line longer than %d bytes", ErrFormat, maxLine)
		}
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return nil, fmt.Errorf("tree index: read: %w", err)
	}
	return nil, io.EOF
}

// Header returns the index's header.
func (r *Reader) Header() Header { return r.hdr }

// Next returns the next entry. It returns io.EOF after the last entry once
// the trailer has been verified, and an error wrapping ErrFormat for an
// invalid, out-of-order or duplicate entry, a truncated index, or a trailer
// that does not match. Errors are sticky.
func (r *Reader) Next() (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
	}
	return e, err
}

func (r *Reader) next() (Entry, error) {
	line, err := r.line()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Entry{}, fmt.Errorf("%w: truncated after %d entries (no trailer)", ErrFormat, r.ord.n)
		}
		return Entry{}, err
	}
	l := &r.l // reused: a line decoded by encoding/json escapes
	*l = entryLine{}
	if err := decodeLine(line, l); err != nil {
		return Entry{}, fmt.Errorf("%w: after entry %q: %v", ErrFormat, r.ord.last, err)
	}
	if l.End != nil {
		return Entry{}, r.end(l.End)
	}
	if r.ord.n >= r.max {
		return Entry{}, fmt.Errorf("%w: more than %d entries", ErrFormat, r.max)
	}
	r.sum.Write(line)
	r.sum.Write([]byte{'\n'})
	e, err := fromLine(l)
	if err != nil {
		return Entry{}, err
	}
	if l.Pack != nil {
		if e.Type != File {
			return Entry{}, fmt.Errorf("%w: entry %q: %s with a pack", ErrFormat, e.Path, e.Type)
		}
		if e.Pack, err = r.packs.complete(e.Path, l.Pack); err != nil {
			return Entry{}, err
		}
	}
	if l.CPack != nil {
		if e.Type != File {
			return Entry{}, fmt.Errorf("%w: entry %q: %s with a control pack", ErrFormat, e.Path, e.Type)
		}
		if e.ControlPack, err = r.ctls.complete(e.Path, l.CPack); err != nil {
			return Entry{}, err
		}
	}
	if l.Sums != nil {
		if e.Type != File {
			return Entry{}, fmt.Errorf("%w: entry %q: %s with block sums", ErrFormat, e.Path, e.Type)
		}
		if e.Sums, err = r.sums.complete(e.Path, l.Sums); err != nil {
			return Entry{}, err
		}
	}
	if l.Frames != nil {
		if e.Type != File {
			return Entry{}, fmt.Errorf("%w: entry %q: %s with frames", ErrFormat, e.Path, e.Type)
		}
		if e.Frames, err = framesFromLine(e.Path, l.Frames); err != nil {
			return Entry{}, err
		}
	}
	if err := e.Check(); err != nil {
		return Entry{}, err
	}
	if err := r.ord.add(&e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (r *Reader) end(t *trailer) error {
	if t.Count != r.ord.n {
		return fmt.Errorf("%w: trailer counts %d entries, the index has %d", ErrFormat, t.Count, r.ord.n)
	}
	sum := r.sum.Sum(nil)
	if want, err := hex.DecodeString(t.SHA256); err != nil || !bytes.Equal(want, sum) {
		return fmt.Errorf("%w: content hash of the entries does not match the trailer", ErrFormat)
	}
	if _, err := r.line(); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: data after the trailer", ErrFormat)
	}
	r.final = sum
	return io.EOF
}

// Sum returns the content hash (SHA-256 of the entry lines, as in the
// trailer) once Next has returned io.EOF, else nil.
func (r *Reader) Sum() []byte { return r.final }

// Index is a whole index in memory.
type Index struct {
	Header Header
	// Entries are in Compare order.
	Entries []Entry
	// Sum is the content hash.
	Sum []byte
}

// ReadAll reads a whole index.
func ReadAll(r io.Reader, opts ReaderOptions) (*Index, error) {
	ir, err := NewReader(r, opts)
	if err != nil {
		return nil, err
	}
	idx := &Index{Header: ir.Header()}
	// Entries are gathered in chunks and copied once into a slice of the
	// right size: appending to one slice would allocate and copy about
	// five times the final size as it grows.
	var chunks [][]Entry
	chunk := make([]Entry, 0, 256)
	n := 0
	for {
		e, err := ir.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(chunk) == cap(chunk) {
			chunks = append(chunks, chunk)
			chunk = make([]Entry, 0, min(2*cap(chunk), 8192))
			// Entries hold pointers: written under the collector's
			// write barrier, which reads each slot first (see prefault).
			prefault.Slice(chunk)
		}
		chunk = append(chunk, e)
		n++
		if opts.Each != nil {
			opts.Each(&chunk[len(chunk)-1])
		}
	}
	if n > 0 {
		idx.Entries = make([]Entry, 0, n)
		prefault.Slice(idx.Entries)
		for _, c := range append(chunks, chunk) {
			idx.Entries = append(idx.Entries, c...)
		}
	}
	idx.Sum = ir.Sum()
	return idx, nil
}

// Lookup returns the entry at path p, if listed.
func (x *Index) Lookup(p string) (*Entry, bool) {
	i := sort.Search(len(x.Entries), func(i int) bool { return Compare(x.Entries[i].Path, p) >= 0 })
	if i < len(x.Entries) && x.Entries[i].Path == p {
		return &x.Entries[i], true
	}
	return nil, false
}

// Write writes x with a Writer: x.Header, then x.Entries. It sets x.Sum.
// A compressed index is compressed by a goroutine of its own while the
// lines are encoded (55 ms and 30 ms for a Go toolchain tree's index, at
// the end of every indexing pass).
func (x *Index) Write(w io.Writer, opts WriterOptions) error {
	if opts.Uncompressed {
		return x.write(w, opts)
	}
	gz, err := newGzip(w, opts.Level)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// A buffer as large as the Writer's: each write is read at once.
		_, err := io.CopyBuffer(gz, pr, make([]byte, writeBuffer))
		if err == nil {
			err = gz.Close()
		}
		pr.CloseWithError(err) // fails the writes still to come
		if err != nil {
			err = fmt.Errorf("tree index: write: %w", err)
		}
		done <- err
	}()
	opts.Uncompressed = true
	err = x.write(pw, opts)
	pw.CloseWithError(err) // nil: the end of the lines
	if gerr := <-done; err == nil {
		err = gerr
	}
	return err
}

// write writes x with a Writer whose options are opts.
func (x *Index) write(w io.Writer, opts WriterOptions) error {
	iw, err := NewWriter(w, x.Header, opts)
	if err != nil {
		return err
	}
	for _, e := range x.Entries {
		if err := iw.Add(e); err != nil {
			return err
		}
	}
	if err := iw.Close(); err != nil {
		return err
	}
	x.Sum = iw.Sum()
	return nil
}
