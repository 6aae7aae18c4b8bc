package httpsource

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// fetchLikeStage reads the calls from src the way the fetch stage does: in
// order, conc at a time, each call starting when a slot frees. It checks
// every byte delivered.
func fetchLikeStage(t *testing.T, src source.RangeSource, data []byte, calls [][]source.Range, conc int) {
	t.Helper()
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	errs := make([]error, len(calls))
	for i, call := range calls {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := fetch(src, data, call)
			if err == nil && len(c.delivered) != len(call) {
				err = errors.New("not every range delivered")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// scattered returns calls of perCall ranges of bs bytes, one every step
// bytes, across size bytes.
func scattered(size, bs, step int64, perCall int) [][]source.Range {
	var calls [][]source.Range
	var cur []source.Range
	for off := int64(0); off+bs <= size; off += step {
		cur = append(cur, source.Range{Start: off, End: off + bs})
		if len(cur) == perCall {
			calls = append(calls, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		calls = append(calls, cur)
	}
	return calls
}

// A server that ignores ranges (python's http.server) is read at most once,
// however many calls run at once.
func TestIgnoreRangesReadOnce(t *testing.T) {
	const size = 4 << 20
	data := testData(size)
	srv := newServer(t, data, faultserver.Options{IgnoreRanges: true})
	src := newSource(t, srv.URL(), Options{})
	calls := scattered(size, 2048, 40000, 20)
	fetchLikeStage(t, src, data, calls, 8)
	st := src.Stats()
	if st.BodyBytes > size {
		t.Errorf("read %d body bytes of a %d-byte file: more than once", st.BodyBytes, size)
	}
	// The first request (20 ranges) gets 200 and steps down, the second
	// (one range) gets 200 and becomes the stream; the other calls' first
	// requests were sent before that was known.
	if n := srv.Requests(); n > 2+8 {
		t.Errorf("%d requests", n)
	}
	var want int64
	for _, c := range calls {
		for _, r := range c {
			want += r.Len()
		}
	}
	if st.PayloadBytes != want {
		t.Errorf("payload %d, want %d", st.PayloadBytes, want)
	}
}

// A server that answers several ranges with the whole file but single ones
// with 206 (nginx with max_ranges 1) gets single ranges at once.
func TestMultiRange200StepsDownToOne(t *testing.T) {
	const size = 4 << 20
	data := testData(size)
	srv := newServer(t, data, faultserver.Options{MaxRanges: 1, RejectStatus: http.StatusOK})
	src := newSource(t, srv.URL(), Options{})
	calls := scattered(size, 2048, 40000, 20)
	fetchLikeStage(t, src, data, calls, 8)
	if src.MaxRanges() != 1 {
		t.Errorf("MaxRanges = %d, want 1", src.MaxRanges())
	}
	st := src.Stats()
	if st.BodyBytes > 3*st.PayloadBytes {
		t.Errorf("read %d body bytes for %d bytes of payload", st.BodyBytes, st.PayloadBytes)
	}
	n200 := 0
	for _, r := range srv.Log() {
		if r.Status == http.StatusOK {
			n200++
		}
	}
	if n200 > 8 {
		t.Errorf("%d answers of 200: the step down to one range was not at once", n200)
	}
}

// The stream survives a callback error of one call, and a dropped
// connection: the calls retry and still get their ranges from one body
// each time.
func TestIgnoreRangesStreamFailures(t *testing.T) {
	const size = 1 << 20
	data := testData(size)
	srv := newServer(t, data, faultserver.Options{IgnoreRanges: true, DropAfter: size / 2, Faults: 2})
	src := newSource(t, srv.URL(), Options{})
	calls := scattered(size, 1000, 9000, 10)
	fetchLikeStage(t, src, data, calls, 4)

	boom := errors.New("boom")
	err := src.ReadRanges(context.Background(), calls[0], func(r source.Range, d io.Reader) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("callback error: got %v", err)
	}
	fetchLikeStage(t, src, data, calls[len(calls)/2:], 4)
}

// A server that always stalls costs at most MaxWait in all, however many
// retries are allowed and however long IdleTimeout is, and the error says
// how long it waited. (One range: the stall, half-way through the body,
// comes before any range is delivered, so no attempt makes progress.)
func TestMaxWaitBoundsStalls(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{Stall: time.Minute})
	src := newSource(t, srv.URL(), Options{Retries: 100, MaxWait: 1500 * time.Millisecond, Backoff: 100 * time.Millisecond})
	start := time.Now()
	_, err := fetch(src, data, spaced(0, 1000, 1000, 1))
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "stalled") || !strings.Contains(err.Error(), "without progress, and the limit is 1.5s") {
		t.Fatalf("err = %v", err)
	}
	if d > 3*time.Second {
		t.Errorf("gave up after %v, want about 1.5s", d)
	}
}

// A private server's certificate is trusted through CAFile, and only then.
func TestCAFile(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{TLS: true})
	ranges := spaced(0, 1000, 1000, 5)
	untrusted := newSource(t, srv.URL(), Options{Retries: -1})
	if _, err := fetch(untrusted, data, ranges); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without CAFile: err = %v, want a certificate error", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CertificatePEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	trusted := newSource(t, srv.URL(), Options{CAFile: ca})
	c, err := fetch(trusted, data, ranges)
	if err != nil {
		t.Fatalf("with CAFile: %v", err)
	}
	c.verify(t, ranges)
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(srv.URL(), Options{CAFile: ca}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: err = %v", err)
	}
}

// The calls of the fetch stage start in file order but may reach the
// Source in any order. With the ranges announced by Expect, a call whose
// ranges come later does not make the stream read past those of a call
// that has not started yet, which would then read the file a second time
// up to them (TestSyncIgnoredRangesSummary downloaded twice the file when
// two calls near its end arrived swapped).
func TestIgnoreRangesExpectedCallArrivesLate(t *testing.T) {
	const size = 1 << 20
	data := testData(size)
	srv := newServer(t, data, faultserver.Options{IgnoreRanges: true})
	src := newSource(t, srv.URL(), Options{})
	early := spaced(100<<10, 2048, 10000, 10)
	late := spaced(800<<10, 2048, 10000, 10)
	src.Expect(slices.Concat(early, late))

	// The late call starts first; the early one once the late one has
	// been handed a range, or after a while: without Expect the stream
	// hands it its ranges at once.
	first := make(chan struct{})
	var once sync.Once
	lateDone := make(chan error, 1)
	go func() {
		c := &checker{want: data}
		lateDone <- src.ReadRanges(context.Background(), late, func(r source.Range, data io.Reader) error {
			once.Do(func() { close(first) })
			return c.fn(r, data)
		})
	}()
	select {
	case <-first:
	case <-time.After(300 * time.Millisecond):
	}
	c, err := fetch(src, data, early)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, early)
	if err := <-lateDone; err != nil {
		t.Fatal(err)
	}
	if st := src.Stats(); st.BodyBytes > size {
		t.Errorf("read %d body bytes of a %d-byte file: more than once", st.BodyBytes, size)
	}
}
