package stages

import (
	"context"
	"errors"
	"io"
)

// Range is the half-open byte range [Start, End) of the target file.
type Range struct {
	Start, End int64
}

// Len returns the number of bytes in the range.
func (r Range) Len() int64 { return r.End - r.Start }

// A RangeSource reads byte ranges of the target file from wherever it is
// published: a local file, an HTTP server, a set of mirrors.
//
// ReadRanges fetches the given ranges, which are sorted, non-empty and do not
// overlap, and calls fn once per range, in order, with a reader of exactly
// r.Len() bytes of that range. fn must consume the reader before returning.
// ReadRanges returns fn's first error, wrapped or as is.
//
// When fn reports that the data was wrong (its error wraps ErrCorrupt), a
// source that knows other copies of the file may drop the copy that served it
// and deliver the same range again from another; fn must therefore accept a
// range it has seen before. Implementations must be safe for concurrent use.
type RangeSource interface {
	ReadRanges(ctx context.Context, ranges []Range, fn func(r Range, data io.Reader) error) error
}

// ErrCorrupt is wrapped by errors that report data failing its checksum.
var ErrCorrupt = errors.New("data failed its checksum")
