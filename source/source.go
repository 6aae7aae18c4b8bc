// Package source defines how the missing parts of a target file are read
// from wherever it is published: the Range type, the RangeSource interface
// that every transport (HTTP, SFTP, a local file) implements, and the
// optional statistics a source may report.
//
// It is a leaf package: transports import it without importing the stages
// that consume their data, and the stages import it without importing any
// transport.
package source

import (
	"context"
	"errors"
	"fmt"
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

// ErrChanged is wrapped by errors that report that the remote file is not
// the one earlier reads came from: its size, modification time or ETag
// changed during the sync.
var ErrChanged = errors.New("remote file changed during sync")

// CheckRanges reports ranges that are not sorted, empty or overlapping: the
// ranges a RangeSource must refuse.
func CheckRanges(ranges []Range) error {
	var end int64
	for i, r := range ranges {
		if r.Start < 0 || r.End <= r.Start {
			return fmt.Errorf("range %d [%d, %d) is empty or negative", i, r.Start, r.End)
		}
		if i > 0 && r.Start < end {
			return fmt.Errorf("range %d [%d, %d) overlaps or precedes the one before", i, r.Start, r.End)
		}
		end = r.End
	}
	return nil
}

// Stats is what a RangeSource reports about its transfers.
type Stats struct {
	// Requests counts the requests (or calls) made to the server.
	Requests int64
	// Ranges counts the ranges fetched.
	Ranges int64
	// Overhead counts the protocol bytes beyond the payload: headers,
	// multipart boundaries, bytes of a reply that were not asked for.
	Overhead int64
	// Downloaded counts every byte received: payload, overhead, and
	// bytes received again on retries.
	Downloaded int64
}

// Add returns the sum of s and o.
func (s Stats) Add(o Stats) Stats {
	return Stats{Requests: s.Requests + o.Requests, Ranges: s.Ranges + o.Ranges, Overhead: s.Overhead + o.Overhead, Downloaded: s.Downloaded + o.Downloaded}
}

// A StatsReporter is a RangeSource that reports its transfers. It is
// optional: callers check for it with a type assertion, and a source that
// does not implement it is reported as having made no requests.
type StatsReporter interface {
	RangeSource
	// TransferStats returns the totals so far. It is safe to call while
	// ReadRanges runs.
	TransferStats() Stats
}

// A RangeLimiter is a RangeSource that carries at most MaxRanges ranges in
// one request (an HTTP source: the ranges of one Range header). The fetch
// stage gives each ReadRanges call up to that many ranges when it has more
// ranges than calls in flight, so that fewer requests, each with its own
// headers, carry them. It is optional: callers check for it with a type
// assertion.
type RangeLimiter interface {
	RangeSource
	// MaxRanges returns the number of ranges one request carries now; it
	// may fall while the source runs (a server that refuses many).
	MaxRanges() int
}

// An Expecter is a RangeSource that reads better when it knows in advance
// every range the coming ReadRanges calls will ask for: one that serves
// concurrent calls from a single front-to-back read (an HTTP server that
// ignores ranges) does not read past a range whose call has not started
// yet. It is optional: callers check for it with a type assertion.
type Expecter interface {
	RangeSource
	// Expect announces the ranges, sorted and non-overlapping, of the
	// ReadRanges calls about to start; it replaces any earlier
	// announcement. Ranges never asked for only cost some waiting.
	Expect(ranges []Range)
}

// ReaderAt is a RangeSource reading from a local copy of the target.
type ReaderAt struct {
	R io.ReaderAt
}

// ReadRanges implements RangeSource.
func (s ReaderAt) ReadRanges(ctx context.Context, ranges []Range, fn func(Range, io.Reader) error) error {
	for _, r := range ranges {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r, io.NewSectionReader(s.R, r.Start, r.Len())); err != nil {
			return err
		}
	}
	return nil
}
