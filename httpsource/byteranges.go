package httpsource

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// byteranges reads a multipart/byteranges body (RFC 9110 §14.6, with the
// framing of RFC 2046 §5.1.1) part by part. Unlike mime/multipart, which
// looks for the boundary in every byte of every part and hands the bytes
// on from a 4 KiB buffer, it takes each part's length from its
// Content-Range and reads the part's bytes straight into the caller's
// buffer (whole reads of the connection, no copy in between); the
// delimiter must then follow at once. A part that holds more or fewer
// bytes than its Content-Range says is an error: a short one ends in the
// next delimiter, which the caller's checks reject, or in the end of the
// body; either way, its delimiter is not where it must be.
type byteranges struct {
	r     *bufio.Reader
	dash  []byte // "--" boundary
	begun bool   // the first delimiter is read
	crlf  bool   // the first delimiter ends in CRLF, not LF
	cr    bool   // the last line read ended in CRLF
	left  int64  // bytes of the current part not read yet
	err   error  // sticky: the body is unusable after it
}

// byterangesBuffer is the buffer of byteranges: it holds the delimiters
// and headers of parts (a line may not be longer); the parts' bytes go
// around it.
const byterangesBuffer = 8 << 10

// Bounds of what byteranges reads outside the parts: the preamble before
// the first delimiter, and the header lines of one part.
const (
	maxPreamble    = 64 << 10
	maxPartHeaders = 32
)

// errFraming is wrapped by the errors of a malformed multipart body.
var errFraming = errors.New("malformed multipart/byteranges body")

func newByteranges(r io.Reader, boundary string) *byteranges {
	return &byteranges{r: bufio.NewReaderSize(r, byterangesBuffer), dash: []byte("--" + boundary)}
}

// next skips what is left of the current part, reads the delimiter and
// the headers of the next part, and returns the range its Content-Range
// states and its bytes. It returns io.EOF after the closing delimiter.
func (b *byteranges) next() (start, end, total int64, part io.Reader, err error) {
	if b.err != nil {
		return 0, 0, 0, nil, b.err
	}
	start, end, total, err = b.nextPart()
	if err != nil {
		b.err = err
		return 0, 0, 0, nil, err
	}
	b.left = end - start
	return start, end, total, b, nil
}

func (b *byteranges) nextPart() (start, end, total int64, err error) {
	if b.begun {
		if b.left > 0 {
			if _, err := io.CopyN(io.Discard, b, b.left); err != nil {
				return 0, 0, 0, err
			}
		}
		// The part's bytes end right before the delimiter's line break,
		// which is the first delimiter's: CRLF (a part one byte short,
		// ending in its CR, is then found out too) or, from some
		// servers, LF.
		c, err := b.r.ReadByte()
		if err == nil && b.crlf {
			if c != '\r' {
				c = 0
			} else {
				c, err = b.r.ReadByte()
			}
		}
		if err != nil {
			return 0, 0, 0, noEOF(err)
		}
		if c != '\n' {
			return 0, 0, 0, fmt.Errorf("%w: a part holds more bytes than its Content-Range says", errFraming)
		}
		line, err := b.line()
		if err != nil {
			return 0, 0, 0, err
		}
		if !bytes.HasPrefix(line, b.dash) {
			return 0, 0, 0, fmt.Errorf("%w: a part holds more bytes than its Content-Range says", errFraming)
		}
		if last, err := b.delimiter(line); err != nil || last {
			if err == nil {
				err = io.EOF
			}
			return 0, 0, 0, err
		}
	} else {
		// Skip the preamble (nginx sends an empty line) up to the first
		// delimiter.
		read := 0
		for {
			line, err := b.line()
			if err != nil {
				return 0, 0, 0, err
			}
			if bytes.HasPrefix(line, b.dash) {
				// A line that only starts like a delimiter is preamble.
				if last, err := b.delimiter(line); err == nil {
					b.crlf = b.cr
					if last {
						return 0, 0, 0, io.EOF
					}
					break
				}
			}
			if read += len(line); read > maxPreamble {
				return 0, 0, 0, fmt.Errorf("%w: no delimiter in the first %d bytes", errFraming, maxPreamble)
			}
		}
		b.begun = true
	}
	cr, err := b.headers()
	if err != nil {
		return 0, 0, 0, err
	}
	return parseContentRange(cr)
}

// line reads a line, without its line break: at most the buffer's length.
func (b *byteranges) line() ([]byte, error) {
	line, err := b.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: a line longer than %d bytes", errFraming, byterangesBuffer)
	}
	if err == io.EOF && len(line) > 0 {
		// The last line of the body (the closing delimiter, if
		// anything) may end without a line break.
		b.cr = false
		return line, nil
	}
	if err != nil {
		return nil, noEOF(err)
	}
	line = line[:len(line)-1]
	b.cr = len(line) > 0 && line[len(line)-1] == '\r'
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// delimiter checks a line that starts with the dash boundary: the closing
// delimiter (last), or a delimiter followed by nothing but transport
// padding.
func (b *byteranges) delimiter(line []byte) (last bool, err error) {
	rest := line[len(b.dash):]
	if bytes.HasPrefix(rest, []byte("--")) {
		return true, nil
	}
	if len(bytes.TrimRight(rest, " \t")) > 0 {
		return false, fmt.Errorf("%w: a delimiter line holds more than the boundary", errFraming)
	}
	return false, nil
}

// headers reads the header lines of a part up to the empty line and
// returns the value of its Content-Range.
func (b *byteranges) headers() (contentRange string, err error) {
	var found, inRange bool
	for n := 0; ; n++ {
		if n > maxPartHeaders {
			return "", fmt.Errorf("%w: more than %d header lines in a part", errFraming, maxPartHeaders)
		}
		line, err := b.line()
		if err != nil {
			return "", err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' { // an obsolete line folding
			if inRange {
				contentRange += " " + string(bytes.TrimSpace(line))
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return "", fmt.Errorf("%w: a header line without a colon", errFraming)
		}
		inRange = bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Range"))
		if inRange {
			if found {
				return "", fmt.Errorf("%w: a part with two Content-Range headers", errFraming)
			}
			found = true
			contentRange = string(bytes.TrimSpace(value))
		}
	}
	if !found {
		return "", fmt.Errorf("%w: a part without Content-Range", errFraming)
	}
	return contentRange, nil
}

// Read reads the bytes of the current part: exactly as many as its
// Content-Range states, then io.EOF.
func (b *byteranges) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		if b.left > 0 {
			err = io.ErrUnexpectedEOF
		} else {
			err = nil
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}
