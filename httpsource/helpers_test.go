package httpsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/source"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// everyOther returns count ranges of size bs, each followed by a gap of gap
// bytes, starting at offset start.
func spaced(start, bs, gap int64, count int) []source.Range {
	var rs []source.Range
	for i := range count {
		s := start + int64(i)*(bs+gap)
		rs = append(rs, source.Range{Start: s, End: s + bs})
	}
	return rs
}

// checker is a ReadRanges callback that compares each range with want,
// returns read errors wrapped, and reports bad data with source.ErrCorrupt.
type checker struct {
	want      []byte
	delivered []source.Range // every call that returned nil, in order
	calls     int
}

func (c *checker) fn(r source.Range, data io.Reader) error {
	c.calls++
	got, err := io.ReadAll(data)
	if err != nil {
		return fmt.Errorf("reading range %d-%d: %w", r.Start, r.End, err)
	}
	if int64(len(got)) != r.Len() {
		return fmt.Errorf("range %d-%d: got %d bytes", r.Start, r.End, len(got))
	}
	if !bytes.Equal(got, c.want[r.Start:r.End]) {
		return fmt.Errorf("range %d-%d: %w", r.Start, r.End, source.ErrCorrupt)
	}
	c.delivered = append(c.delivered, r)
	return nil
}

// verify fails t unless every range was delivered once, in order.
func (c *checker) verify(t *testing.T, ranges []source.Range) {
	t.Helper()
	if len(c.delivered) != len(ranges) {
		t.Fatalf("delivered %d ranges, want %d", len(c.delivered), len(ranges))
	}
	for i := range ranges {
		if c.delivered[i] != ranges[i] {
			t.Fatalf("delivery %d was %v, want %v", i, c.delivered[i], ranges[i])
		}
	}
}

// newSource returns a Source for u with fast test timings, closed at the
// end of the test.
func newSource(t *testing.T, u string, opts Options) *Source {
	t.Helper()
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	s, err := New(u, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)
	return s
}

func newServer(t *testing.T, data []byte, opts faultserver.Options) *faultserver.Server {
	t.Helper()
	srv := faultserver.New(data, opts)
	t.Cleanup(srv.Close)
	return srv
}

// fetch reads ranges from src with a fresh checker.
func fetch(src source.RangeSource, data []byte, ranges []source.Range) (*checker, error) {
	c := &checker{want: data}
	err := src.ReadRanges(context.Background(), ranges, c.fn)
	return c, err
}
