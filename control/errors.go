package control

import (
	"errors"
	"strconv"
	"strings"
)

// ErrTruncated is wrapped by the errors of Read, ReadHeader and ReadRecords
// when the input ends before the header's empty line or before the last
// block record.
var ErrTruncated = errors.New("truncated")

// ErrTooLarge is wrapped by the errors of Read when the control file is, or
// says it is, larger than MaxSize.
var ErrTooLarge = errors.New("control file too large")

// FormatError describes a control file (or, from Write and
// Header.Validate, a header) that breaks the format's rules.
type FormatError struct {
	// Line is the 1-based header line the problem was found on, or 0 when
	// it concerns the block records or a header not read from a file.
	Line int
	// Name is the header name concerned, empty if none.
	Name string
	// Err describes the problem.
	Err error
}

// Error returns e.g. "control file: line 5: Blocksize: not a power of two: 3000".
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("control file: ")
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Name != "" {
		b.WriteString(e.Name)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }
