package control

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// MaxLineLength is the longest header line, in bytes without its LF, that
// Read accepts and Write produces. zsync 0.6.2 itself reads at most 1023
// bytes per line, so longer lines (in practice long URLs) are not portable.
const MaxLineLength = 8192

// MaxHeaderSize bounds the total size of a header in bytes, not counting
// the binary map of a Z-Map2 header, for both Read and Write.
const MaxHeaderSize = 1 << 20

// maxZMapEntries bounds the entry count of a Z-Map2 header; zsync 0.6.2
// reads it into a C int.
const maxZMapEntries = math.MaxInt32

// minBlocksize and maxBlocksize bound the Blocksize header (see
// CheckBlocksize). The largest is 1 MiB: zsyncmake chooses 2048 or 4096;
// larger blocks only make the client fetch more than it needs, and each
// scanning worker holds a few blocks at a time, so a hostile control file
// could otherwise make it hold gigabytes.
const (
	minBlocksize = 1
	maxBlocksize = 1 << 20
)

// MaxSize is the largest control file Read accepts, header, Z-Map2 and
// block records together: 256 MiB, the records of a file of about 64 GiB
// at zsyncmake's defaults. A header whose block records would not fit is
// refused before any record is read.
const MaxSize = 256 << 20

// recordChunk is how many block records Read reads at once; the slices
// of Checksums grow only as records actually arrive.
const recordChunk = 4096

// MTimeLayout is the layout of the MTime header (RFC 1123 with a numeric
// zone), as written by zsyncmake: "%a, %d %b %Y %H:%M:%S %z".
const MTimeLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// mtimeLayoutNoDay is the second form zsync 0.6.2 accepts.
const mtimeLayoutNoDay = "02 Jan 2006 15:04:05 -0700"

// Header names this package interprets or knows.
const (
	hdrVersion    = "zsync"
	hdrMinVersion = "Min-Version"
	hdrFilename   = "Filename"
	hdrMTime      = "MTime"
	hdrBlocksize  = "Blocksize"
	hdrLength     = "Length"
	hdrHashLen    = "Hash-Lengths"
	hdrURL        = "URL"
	hdrSHA1       = "SHA-1"
	hdrSafe       = "Safe"
	hdrStrongAlg  = "Strong-Hash-Algorithm"
	hdrFileHash   = "File-Hash"
	hdrZMap2      = "Z-Map2"
	hdrZURL       = "Z-URL"
	hdrZFilename  = "Z-Filename"
	hdrRecompress = "Recompress"
	hdrChain      = "Hash-Chain"
)

// sha256Prefix is the algorithm tag of a SHA-256 File-Hash value.
const sha256Prefix = "SHA-256:"

// Read reads a whole control file as a stream: the header and all block
// records. It is an error if r ends before the last record, if anything
// follows it, or if the file is larger than MaxSize; memory grows with the
// records actually read, never beyond what a MaxSize file needs.
func Read(r io.Reader) (*File, error) {
	lr := &io.LimitedReader{R: r, N: MaxSize + 1}
	br := bufio.NewReaderSize(lr, readBufSize(r))
	h, err := ReadHeader(br)
	if err != nil {
		return nil, tooLarge(lr, err)
	}
	recLen := int64(h.HashLengths.RsumBytes + h.HashLengths.StrongBytes)
	if h.Blocks() > (MaxSize+1)/max(recLen, 1) || h.Blocks()*recLen > lr.N+int64(br.Buffered())-1 {
		return nil, &FormatError{Name: hdrLength, Err: fmt.Errorf("%w: %d blocks of %d-byte records make a control file larger than %d bytes", ErrTooLarge, h.Blocks(), recLen, MaxSize)}
	}
	c, err := ReadRecords(br, h)
	if err != nil {
		return nil, err
	}
	if _, err := br.Peek(1); err == nil {
		return nil, tooLarge(lr, &FormatError{Err: fmt.Errorf("trailing data after the %d block records", c.Len())})
	} else if err != io.EOF {
		return nil, fmt.Errorf("control file: reading after the block records: %w", err)
	}
	return &File{Header: *h, Checksums: *c}, nil
}

// readBufSize returns the size of the buffer Read reads r through:
// bufio's default, or less when r says it holds less (a *bytes.Reader or
// a *strings.Reader). A mirror reads a thousand control files from
// memory, most of them under 1 KiB, and a 4 KiB buffer for each made 4
// MB of garbage per run of a Go toolchain tree.
func readBufSize(r io.Reader) int {
	const def = 4096
	if l, ok := r.(interface{ Len() int }); ok {
		return min(def, l.Len()) // bufio makes it at least 16 bytes
	}
	return def
}

// tooLarge returns an error wrapping ErrTooLarge instead of err when lr
// ran out: the input went past MaxSize.
func tooLarge(lr *io.LimitedReader, err error) error {
	if lr.N > 0 {
		return err
	}
	return &FormatError{Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxSize)}
}

// ReadRecords reads the h.Blocks() block records that follow a header
// read by ReadHeader. It does not check what follows the last record.
// Memory grows with the records actually read, not with h.Length, so a
// truncated file claiming a huge length fails cheaply with an error
// wrapping ErrTruncated.
func ReadRecords(r io.Reader, h *Header) (*Checksums, error) {
	rb, sb := h.HashLengths.RsumBytes, h.HashLengths.StrongBytes
	if rb < 1 || rb > 4 || sb < 1 || sb > 64 {
		return nil, &FormatError{Name: hdrHashLen, Err: fmt.Errorf("invalid record layout %d,%d", rb, sb)}
	}
	c := &Checksums{RsumBytes: rb, StrongBytes: sb}
	total := h.Blocks()
	if total == 0 {
		return c, nil
	}
	recLen := rb + sb
	first := min(total, recordChunk)
	c.Rsum = make([]uint32, 0, first)
	c.Strong = make([]byte, 0, first*int64(sb))
	buf := make([]byte, int(first)*recLen)
	var got int64
	for got < total {
		want := int(min(total-got, recordChunk))
		n, err := io.ReadFull(r, buf[:want*recLen])
		for rec := buf[:n-n%recLen]; len(rec) > 0; rec = rec[recLen:] {
			var v uint32
			for _, x := range rec[:rb] {
				v = v<<8 | uint32(x)
			}
			c.Rsum = append(c.Rsum, v)
			c.Strong = append(c.Strong, rec[rb:recLen]...)
			got++
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, &FormatError{Err: fmt.Errorf("%w: got %d of %d block records", ErrTruncated, got, total)}
		}
		if err != nil {
			return nil, fmt.Errorf("control file: reading block record %d: %w", got, err)
		}
	}
	return c, nil
}

// headerParser holds the state of ReadHeader.
type headerParser struct {
	br      *bufio.Reader
	line    int    // number of the line last read
	size    int    // header bytes read so far
	buf     []byte // the line being assembled
	h       Header
	seen    map[string]int // single-valued header name → its line
	hashLn  int            // line of Hash-Lengths, 0 if absent
	safeLn  int            // line of the first Safe header
	unknown []unknownField // headers that must be listed in Safe
}

// unknownField is a header that is only acceptable if Safe lists it.
type unknownField struct {
	line int
	name string
}

// ReadHeader reads a control file header from br, up to and including the
// empty line that ends it, and leaves br at the first block record.
func ReadHeader(br *bufio.Reader) (*Header, error) {
	p := &headerParser{
		br:   br,
		seen: make(map[string]int),
		h: Header{
			StrongAlgorithm: strong.MD4,
			HashLengths:     HashLengths{SeqMatches: 1, RsumBytes: 4, StrongBytes: 16},
		},
	}
	for {
		line, err := p.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if err := p.field(line); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return &p.h, nil
}

// errorf returns a *FormatError for the current line.
func (p *headerParser) errorf(name, format string, args ...any) error {
	return &FormatError{Line: p.line, Name: name, Err: fmt.Errorf(format, args...)}
}

// readLine reads the next header line and returns it without its LF and
// trailing CRs and spaces. It returns an empty line only for a bare LF.
func (p *headerParser) readLine() ([]byte, error) {
	p.line++
	p.buf = p.buf[:0]
	for {
		frag, err := p.br.ReadSlice('\n')
		p.buf = append(p.buf, frag...)
		if len(p.buf) > MaxLineLength+1 {
			return nil, p.errorf("", "line longer than %d bytes", MaxLineLength)
		}
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if p.line == 1 && len(p.buf) == 0 {
				return nil, p.errorf("", "empty input, not a zsync control file")
			}
			return nil, p.errorf("", "%w: input ends inside the header", ErrTruncated)
		}
		return nil, fmt.Errorf("control file: reading header line %d: %w", p.line, err)
	}
	p.size += len(p.buf)
	if p.size > MaxHeaderSize {
		return nil, p.errorf("", "header longer than %d bytes", MaxHeaderSize)
	}
	raw := p.buf[:len(p.buf)-1]
	if len(raw) == 0 {
		return raw, nil
	}
	line := bytes.TrimRight(raw, "\r ")
	if len(line) == 0 {
		return nil, p.errorf("", "blank line is not a bare LF (CRLF line ends are not allowed)")
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, p.errorf("", "NUL byte in header line")
	}
	return line, nil
}

// field interprets one non-empty header line.
func (p *headerParser) field(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 || colon+1 >= len(line) || line[colon+1] != ' ' {
		return p.errorf("", "not a header line (want \"Name: value\"): %q", truncate(line))
	}
	name, value := string(line[:colon]), string(line[colon+2:])
	if name == "" {
		return p.errorf("", "empty header name")
	}
	if p.line == 1 && name != hdrVersion {
		return p.errorf(name, "not a zsync control file: first header is not \"zsync\"")
	}
	if name == hdrURL {
		p.h.URLs = append(p.h.URLs, value)
		return nil
	}
	if isSingle(name) {
		if first, dup := p.seen[name]; dup {
			return p.errorf(name, "duplicate header (first on line %d)", first)
		}
		p.seen[name] = p.line
	}
	var err error
	h := &p.h
	switch name {
	case hdrVersion:
		if p.line != 1 {
			return p.errorf(name, "must be the first header")
		}
		err = checkVersion(value)
		h.Version = value
	case hdrMinVersion:
		h.MinVersion = value
	case hdrFilename:
		err = checkFilename(value)
		h.Filename = value
	case hdrMTime:
		h.MTime, err = parseMTime(value)
	case hdrBlocksize:
		var n int64
		n, err = parseDecimal(value)
		if err == nil {
			err = checkBlocksize(n)
		}
		h.Blocksize = int(n)
	case hdrLength:
		h.Length, err = parseDecimal(value)
	case hdrHashLen:
		h.HashLengths, err = parseHashLengths(value)
		p.hashLn = p.line
	case hdrSHA1:
		h.SHA1, err = parseHex(value, 20)
	case hdrSafe:
		// zsync 0.6.2 looks for names in the value as substrings, zsync
		// 0.7.x splits it on commas: accept both separators.
		h.Safe = append(h.Safe, strings.FieldsFunc(value, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
		if p.safeLn == 0 {
			p.safeLn = p.line
		}
	case hdrStrongAlg:
		h.StrongAlgorithm, err = strong.ParseAlgorithm(value)
	case hdrFileHash:
		if !isSHA256FileHash(value) {
			h.Extra = append(h.Extra, Field{Name: name, Value: value})
			return nil
		}
		if first, dup := p.seen[hdrFileHash+" "+sha256Prefix]; dup {
			return p.errorf(name, "duplicate SHA-256 hash (first on line %d)", first)
		}
		p.seen[hdrFileHash+" "+sha256Prefix] = p.line
		h.SHA256, err = parseHex(value[len(sha256Prefix):], 32)
	case hdrChain:
		if !isSHA256Chain(value) {
			h.Extra = append(h.Extra, Field{Name: name, Value: value})
			p.unknown = append(p.unknown, unknownField{line: p.line, name: name})
			return nil
		}
		if first, dup := p.seen[hdrChain]; dup {
			return p.errorf(name, "duplicate SHA-256 hash chain (first on line %d)", first)
		}
		p.seen[hdrChain] = p.line
		h.SHA256Chain, err = parseChain(value)
	case hdrZMap2:
		return p.skipZMap(value)
	case hdrZURL, hdrZFilename, hdrRecompress:
		h.Extra = append(h.Extra, Field{Name: name, Value: value})
	default:
		h.Extra = append(h.Extra, Field{Name: name, Value: value})
		p.unknown = append(p.unknown, unknownField{line: p.line, name: name})
	}
	if err != nil {
		return &FormatError{Line: p.line, Name: name, Err: err}
	}
	return nil
}

// skipZMap skips the 4-byte entries that follow a Z-Map2 header line.
func (p *headerParser) skipZMap(value string) error {
	n, err := parseDecimal(value)
	if err == nil && n > maxZMapEntries {
		err = fmt.Errorf("too many entries: %d", n)
	}
	if err != nil {
		return &FormatError{Line: p.line, Name: hdrZMap2, Err: err}
	}
	skipped, err := io.CopyN(io.Discard, p.br, 4*n)
	if err == io.EOF {
		return p.errorf(hdrZMap2, "%w: got %d of %d map bytes", ErrTruncated, skipped, 4*n)
	}
	if err != nil {
		return fmt.Errorf("control file: reading Z-Map2 on line %d: %w", p.line, err)
	}
	return nil
}

// finish applies the checks that need the whole header.
func (p *headerParser) finish() error {
	h := &p.h
	safe := strings.Join(h.Safe, " ")
	for _, u := range p.unknown {
		if !strings.Contains(safe, u.name) {
			return &FormatError{Line: u.line, Name: u.name, Err: errors.New("unknown header not listed in Safe")}
		}
	}
	if _, ok := p.seen[hdrLength]; !ok {
		return p.errorf(hdrLength, "required header missing")
	}
	if _, ok := p.seen[hdrBlocksize]; !ok {
		return p.errorf(hdrBlocksize, "required header missing")
	}
	if err := checkHashLengths(h.HashLengths, h.StrongAlgorithm); err != nil {
		line := p.hashLn
		if line == 0 {
			line = p.line
		}
		return &FormatError{Line: line, Name: hdrHashLen, Err: err}
	}
	if err := checkSafe(safe, h.StrongAlgorithm); err != nil {
		return &FormatError{Line: p.safeLn, Name: hdrSafe, Err: err}
	}
	if slices.Contains(h.Safe, hdrFileHash) && h.SHA256 == nil && !slices.ContainsFunc(h.Extra, func(f Field) bool { return f.Name == hdrFileHash }) {
		// The header says the file carries a whole-file hash: without
		// it the result could not be verified as promised.
		return &FormatError{Line: p.safeLn, Name: hdrSafe, Err: fmt.Errorf("lists %s, but there is none", hdrFileHash)}
	}
	// Belt and braces: whatever Read accepts, Write must accept.
	if err := h.Validate(); err != nil {
		return err
	}
	return nil
}

// isSingle reports whether the header may appear at most once.
func isSingle(name string) bool {
	switch name {
	case hdrVersion, hdrMinVersion, hdrFilename, hdrMTime, hdrBlocksize,
		hdrLength, hdrHashLen, hdrSHA1, hdrStrongAlg:
		return true
	}
	return false
}

// isInterpreted reports whether the header has a dedicated Header field and
// so may not appear in Extra.
func isInterpreted(name string) bool {
	return isSingle(name) || name == hdrURL || name == hdrSafe || name == hdrZMap2
}

// isSHA256FileHash reports whether a File-Hash value is a SHA-256 one.
func isSHA256FileHash(value string) bool {
	return len(value) >= len(sha256Prefix) && strings.EqualFold(value[:len(sha256Prefix)], sha256Prefix)
}

// checkVersion checks the value of the zsync header.
func checkVersion(v string) error {
	if v == "0.0.4" {
		return errors.New("zsync 0.0.4 control files are not supported")
	}
	return nil
}

// checkFilename checks that a Filename cannot name a path.
func checkFilename(v string) error {
	if err := relpath.CheckName(v); err != nil {
		return fmt.Errorf("not a plain file name: %w", err)
	}
	return nil
}

// checkBlocksize checks the Blocksize header.
func checkBlocksize(n int64) error { return checkBlocksizeFrom(n, minBlocksize) }

func checkBlocksizeFrom(n, lo int64) error {
	if n < lo || n > maxBlocksize {
		return fmt.Errorf("out of range %d..%d: %d", lo, maxBlocksize, n)
	}
	if n&(n-1) != 0 {
		return fmt.Errorf("not a power of two: %d", n)
	}
	return nil
}

// checkHashLengths checks Hash-Lengths against the strong hash.
func checkHashLengths(hl HashLengths, alg strong.Algorithm) error {
	if hl.SeqMatches < 1 || hl.SeqMatches > 2 {
		return fmt.Errorf("seq_matches %d out of range 1..2", hl.SeqMatches)
	}
	if hl.RsumBytes < 1 || hl.RsumBytes > 4 {
		return fmt.Errorf("rsum_bytes %d out of range 1..4", hl.RsumBytes)
	}
	maxStrong := alg.Size()
	if maxStrong == 0 {
		return fmt.Errorf("unknown strong hash algorithm %v", alg)
	}
	if hl.StrongBytes < 3 || hl.StrongBytes > maxStrong {
		return fmt.Errorf("strong_bytes %d out of range 3..%d for %v", hl.StrongBytes, maxStrong, alg)
	}
	return nil
}

// checkSafe refuses to let zsync 0.6.2 ignore a strong hash it would
// misread as MD4.
func checkSafe(safe string, alg strong.Algorithm) error {
	if alg != strong.MD4 && strings.Contains(safe, hdrStrongAlg) {
		return fmt.Errorf("lists %s although the algorithm is %v: zsync 0.6.2 would read the records as MD4", hdrStrongAlg, alg)
	}
	return nil
}

// parseDecimal parses a non-negative decimal number of digits only.
func parseDecimal(s string) (int64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a non-negative decimal number: %q", truncate([]byte(s)))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number out of range: %q", truncate([]byte(s)))
	}
	return n, nil
}

// parseHashLengths parses "seq,rsum,strong"; ranges are checked later.
func parseHashLengths(s string) (HashLengths, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return HashLengths{}, fmt.Errorf("want seq_matches,rsum_bytes,strong_bytes: %q", truncate([]byte(s)))
	}
	var v [3]int
	for i, part := range parts {
		n, err := parseDecimal(part)
		if err != nil {
			return HashLengths{}, err
		}
		if n > 1<<20 {
			n = 1 << 20 // out of every range; keeps the int conversion exact
		}
		v[i] = int(n)
	}
	return HashLengths{SeqMatches: v[0], RsumBytes: v[1], StrongBytes: v[2]}, nil
}

// parseHex decodes exactly n bytes of hex.
func parseHex(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("want %d hex digits, got %d characters", 2*n, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad hex: %w", err)
	}
	return b, nil
}

// parseMTime parses an MTime value and returns it in UTC.
func parseMTime(s string) (time.Time, error) {
	t, err := time.Parse(MTimeLayout, s)
	if err != nil {
		var err2 error
		t, err2 = time.Parse(mtimeLayoutNoDay, s)
		if err2 != nil {
			return time.Time{}, fmt.Errorf("not an RFC 1123 date with numeric zone: %q", truncate([]byte(s)))
		}
	}
	return t.UTC(), nil
}

// truncate shortens b for use in an error message.
func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
