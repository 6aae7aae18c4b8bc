package httpsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/source"
)

const fileSize = 200_000

func TestReadRangesMultipart(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{})
	src := newSource(t, srv.URL(), Options{})
	ranges := spaced(10, 600, 600, 150) // gaps too wide to merge
	c, err := fetch(src, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	if got := srv.Requests(); got != 3 { // 64 + 64 + 22
		t.Errorf("requests = %d, want 3", got)
	}
	for _, r := range srv.Log() {
		if n := strings.Count(r.Range, ",") + 1; n > DefaultMaxRanges {
			t.Errorf("request for %d ranges", n)
		}
		if r.Status != http.StatusPartialContent {
			t.Errorf("status %d, want 206", r.Status)
		}
	}
	srv.Close() // waits for the handlers to count their bytes
	st := src.Stats()
	if st.Requests != 3 || st.Ranges != 150 || st.Retries != 0 || st.PayloadBytes != 90_000 {
		t.Errorf("stats = %+v", st)
	}
	if st.BodyBytes <= st.PayloadBytes || st.BodyBytes != srv.BytesServed() {
		t.Errorf("body bytes %d, payload %d, served %d", st.BodyBytes, st.PayloadBytes, srv.BytesServed())
	}
	if log := srv.Log(); log[0].IfRange != "" || log[1].IfRange == "" {
		t.Errorf("If-Range: first %q, later %q; want none, then the ETag", log[0].IfRange, log[1].IfRange)
	}
}

func TestReadRangesSingleAndEdges(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{})
	src := newSource(t, srv.URL(), Options{})
	for _, ranges := range [][]source.Range{
		{{Start: 0, End: 1}},
		{{Start: fileSize - 7, End: fileSize}}, // last partial block
		{{Start: 0, End: fileSize}},
		{{Start: 5, End: 6}, {Start: fileSize - 1, End: fileSize}},
		nil,
	} {
		c, err := fetch(src, data, ranges)
		if err != nil {
			t.Fatalf("%v: %v", ranges, err)
		}
		c.verify(t, ranges)
	}
}

func TestMergeGap(t *testing.T) {
	data := testData(fileSize)
	for _, tc := range []struct {
		gap       int64
		rangeHdrs []string
	}{
		{0, []string{"bytes=100-199,5000-5099"}},          // default: the 56-byte gap costs less than a part
		{-1, []string{"bytes=100-139,196-199,5000-5099"}}, // no merging
		{10_000, []string{"bytes=100-5099"}},              // everything in one range
		{55, []string{"bytes=100-139,196-199,5000-5099"}}, // gap 56 > 55
		{56, []string{"bytes=100-199,5000-5099"}},         // gap 56 ≤ 56
	} {
		srv := newServer(t, data, faultserver.Options{})
		src := newSource(t, srv.URL(), Options{MergeGap: tc.gap})
		ranges := []source.Range{{Start: 100, End: 140}, {Start: 196, End: 200}, {Start: 5000, End: 5100}}
		c, err := fetch(src, data, ranges)
		if err != nil {
			t.Fatal(err)
		}
		c.verify(t, ranges)
		log := srv.Log()
		if len(log) != len(tc.rangeHdrs) || log[0].Range != tc.rangeHdrs[0] {
			t.Errorf("MergeGap %d: log %+v, want Range %q", tc.gap, log, tc.rangeHdrs)
		}
	}
}

// TestMergeCost checks the default merge rule, the cost model of a range:
// two ranges are fetched as one exactly when their gap costs no more bytes
// than the second range as a part of its own (PartOverhead), and that
// estimate is what nginx's framing and the Range header cost.
func TestMergeCost(t *testing.T) {
	data := testData(fileSize)
	// A range at 209-211 of a file of unknown size: 3-digit numbers.
	o := PartOverhead(source.Range{Start: 210, End: 310}, -1)
	if o != 1+7+92+7+3 {
		t.Fatalf("PartOverhead = %d, want %d", o, 1+7+92+7+3)
	}
	for _, gap := range []int64{o - 1, o, o + 1} {
		srv := newServer(t, data, faultserver.Options{})
		src := newSource(t, srv.URL(), Options{})
		ranges := []source.Range{{Start: 0, End: 100}, {Start: 100 + gap, End: 200 + gap}}
		c, err := fetch(src, data, ranges)
		if err != nil {
			t.Fatal(err)
		}
		c.verify(t, ranges)
		want := fmt.Sprintf("bytes=0-%d", 199+gap)
		if gap > o {
			want = fmt.Sprintf("bytes=0-99,%d-%d", 100+gap, 199+gap)
		}
		if log := srv.Log(); len(log) != 1 || log[0].Range != want {
			t.Errorf("gap %d, part cost %d: log %+v, want Range %q", gap, o, log, want)
		}
	}
	// A 4 KiB block at the end of go1.26.8.tar (224798720 bytes), served
	// by nginx: 119–120 bytes of part headers were measured, plus 20 in the
	// Range header.
	if got := PartOverhead(source.Range{Start: 224794624, End: 224798720}, 224798720); got < 135 || got > 145 {
		t.Errorf("PartOverhead of a block of a 225 MB file = %d, want about 140", got)
	}
}

func TestServerCoalesces(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{Coalesce: true})
	src := newSource(t, srv.URL(), Options{MaxRanges: 20})
	ranges := spaced(0, 500, 3000, 30)
	c, err := fetch(src, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	// One part from the first to the 20th range, then one for the last 10.
	if got := srv.Requests(); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

func TestIgnoreRangesFallback(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{IgnoreRanges: true})
	src := newSource(t, srv.URL(), Options{})
	single := []source.Range{{Start: 1000, End: 2000}}
	c, err := fetch(src, data, single)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, single)
	// Learned: the next call sends one request, without Range, for all of
	// its 50 ranges.
	ranges := spaced(10, 100, 2000, 50)
	c, err = fetch(src, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	log := srv.Log()
	if len(log) != 2 {
		t.Fatalf("requests = %d, want 2", len(log))
	}
	if log[0].Range == "" || log[1].Range != "" {
		t.Errorf("Range headers %q, %q; want one, then none", log[0].Range, log[1].Range)
	}
	// Reading stops after the last range: far less than the file was read
	// on the first call.
	if st := src.Stats(); st.PayloadBytes != 1000+5000 {
		t.Errorf("payload %d", st.PayloadBytes)
	}
}

func TestAdaptiveHalving(t *testing.T) {
	data := testData(fileSize)
	ranges := spaced(0, 100, 1000, 60)
	for _, tc := range []struct {
		name   string
		status int
		// requests for the first and the second call
		first, second int64
	}{
		// 20 refused, 10 refused, then 12 requests of 5.
		{"416", 0, 2 + 12, 12},
		{"400", http.StatusBadRequest, 2 + 12, 12},
		{"413", http.StatusRequestEntityTooLarge, 2 + 12, 12},
		// 20 answered by the whole file: one range per request at once
		// (the body is dropped), 60 single ranges answered with 206.
		{"200", http.StatusOK, 1 + 60, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, data, faultserver.Options{MaxRanges: 5, RejectStatus: tc.status})
			src := newSource(t, srv.URL(), Options{MaxRanges: 20})
			c, err := fetch(src, data, ranges)
			if err != nil {
				t.Fatal(err)
			}
			c.verify(t, ranges)
			if got := srv.Requests(); got != tc.first {
				t.Errorf("first call: %d requests, want %d", got, tc.first)
			}
			c, err = fetch(src, data, ranges)
			if err != nil {
				t.Fatal(err)
			}
			c.verify(t, ranges)
			if got := srv.Requests() - tc.first; got != tc.second {
				t.Errorf("second call: %d requests, want %d", got, tc.second)
			}
			if tc.status != http.StatusOK && src.MaxRanges() != 5 {
				t.Errorf("MaxRanges = %d, want 5", src.MaxRanges())
			}
		})
	}
	t.Run("200 steps down to 1", func(t *testing.T) {
		srv := newServer(t, data, faultserver.Options{MaxRanges: 5, RejectStatus: http.StatusOK})
		src := newSource(t, srv.URL(), Options{})
		for range 3 {
			c, err := fetch(src, data, ranges)
			if err != nil {
				t.Fatal(err)
			}
			c.verify(t, ranges)
		}
		// 20 → 200 (down to 1 at once, not 10 then 5: a 200 costs a
		// whole file), then 3 × 60 × 206.
		if got := srv.Requests(); got != 1+3*60 {
			t.Errorf("requests = %d, want 181", got)
		}
		if src.MaxRanges() != 1 {
			t.Errorf("MaxRanges = %d, want 1", src.MaxRanges())
		}
	})
}

func TestDropAfterRetries(t *testing.T) {
	data := testData(fileSize)
	for _, http2 := range []bool{false, true} {
		srv := newServer(t, data, faultserver.Options{DropAfter: 2500, Faults: 3, TLS: http2, HTTP2: http2})
		src := newSource(t, srv.URL(), Options{Client: srv.Client()})
		ranges := spaced(0, 1000, 1000, 20)
		c, err := fetch(src, data, ranges)
		if err != nil {
			t.Fatalf("http2 %v: %v", http2, err)
		}
		c.verify(t, ranges)
		if st := src.Stats(); st.Retries != 3 || st.Requests != 4 {
			t.Errorf("http2 %v: stats %+v, want 3 retries, 4 requests", http2, st)
		}
		// Each retry asks only for what is missing.
		log := srv.Log()
		if strings.HasPrefix(log[1].Range, "bytes=0-") {
			t.Errorf("retry asked again for delivered ranges: %q", log[1].Range)
		}
		// The callback saw read errors; the source knew they were the
		// network's and retried instead of returning them.
		if c.calls <= len(ranges) {
			t.Errorf("callback called %d times; expected failed reads", c.calls)
		}
	}
}

func TestRetriesExhausted(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{DropAfter: 50})
	src := newSource(t, srv.URL(), Options{Retries: 2})
	_, err := fetch(src, data, spaced(0, 1000, 1000, 5))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, srv.URL()) || !strings.Contains(msg, "3 attempts") {
		t.Errorf("error %q should name the URL and 3 attempts", msg)
	}
	if got := srv.Requests(); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

func Test503(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{Status503: true, Faults: 2})
	src := newSource(t, srv.URL(), Options{})
	ranges := spaced(0, 1000, 1000, 5)
	c, err := fetch(src, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	if st := src.Stats(); st.Retries != 2 {
		t.Errorf("retries = %d, want 2", st.Retries)
	}

	srv = newServer(t, data, faultserver.Options{Status503: true})
	src = newSource(t, srv.URL(), Options{Retries: 1})
	_, err = fetch(src, data, ranges)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || !strings.Contains(err.Error(), "2 attempts") ||
		!strings.Contains(err.Error(), srv.URL()) {
		t.Errorf("err = %v, want a 503 StatusError after 2 attempts naming the URL", err)
	}
}

func Test404IsNotRetried(t *testing.T) {
	data := testData(100)
	srv := newServer(t, data, faultserver.Options{})
	src := newSource(t, srv.BaseURL()+"/missing", Options{})
	_, err := fetch(src, data, []source.Range{{Start: 0, End: 10}})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 {
		t.Fatalf("err = %v, want 404", err)
	}
	if st := src.Stats(); st.Requests != 1 {
		t.Errorf("requests = %d, want 1", st.Requests)
	}
}

func Test429RetryAfter(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{Status429: true, RetryAfter: "1", Faults: 1})
	src := newSource(t, srv.URL(), Options{})
	ranges := spaced(0, 1000, 1000, 3)
	start := time.Now()
	c, err := fetch(src, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v; Retry-After asked for 1s", d)
	}
}

func TestStall(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{Stall: 5 * time.Second, Faults: 1})
	src := newSource(t, srv.URL(), Options{IdleTimeout: 200 * time.Millisecond})
	ranges := spaced(0, 1000, 1000, 10)
	start := time.Now()
	c, err := fetch(src, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: the stall was not cut short", d)
	}
	if st := src.Stats(); st.Retries != 1 {
		t.Errorf("retries = %d, want 1", st.Retries)
	}

	// A stall shorter than IdleTimeout is waited out.
	srv = newServer(t, data, faultserver.Options{Stall: 100 * time.Millisecond})
	src = newSource(t, srv.URL(), Options{IdleTimeout: 2 * time.Second})
	if _, err := fetch(src, data, ranges); err != nil {
		t.Fatal(err)
	}
	if st := src.Stats(); st.Retries != 0 {
		t.Errorf("retries = %d, want 0", st.Retries)
	}
}

func TestCallbackErrorsReturnedAsIs(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{CorruptRange: source.Range{Start: 2500, End: 2501}})
	src := newSource(t, srv.URL(), Options{})
	ranges := spaced(0, 1000, 1000, 5)
	c, err := fetch(src, data, ranges)
	if !errors.Is(err, source.ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	if len(c.delivered) != 1 || srv.Requests() != 1 {
		t.Errorf("delivered %d, requests %d; want 1 and no retry", len(c.delivered), srv.Requests())
	}

	mine := errors.New("stop")
	err = src.ReadRanges(context.Background(), ranges, func(source.Range, io.Reader) error { return mine })
	if err != mine {
		t.Errorf("err = %v, want the callback's own error", err)
	}
	if srv.Requests() != 2 {
		t.Errorf("requests = %d, want 2: a callback error is not retried", srv.Requests())
	}
}

func TestChanged(t *testing.T) {
	data := testData(fileSize)
	ranges := spaced(0, 1000, 1000, 5)
	for _, tc := range []struct {
		name string
		opts faultserver.Options
	}{
		{"If-Range 200", faultserver.Options{ChangeAfter: 1}},
		{"ignores If-Range", faultserver.Options{ChangeAfter: 1, IgnoreIfRange: true}},
		{"Last-Modified only", faultserver.Options{ChangeAfter: 1, NoETag: true}},
		{"Last-Modified, ignores If-Range", faultserver.Options{ChangeAfter: 1, NoETag: true, IgnoreIfRange: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, data, tc.opts)
			src := newSource(t, srv.URL(), Options{})
			if c, err := fetch(src, data, ranges); err != nil {
				t.Fatal(err)
			} else {
				c.verify(t, ranges)
			}
			c, err := fetch(src, data, ranges)
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("err = %v, want ErrChanged", err)
			}
			if len(c.delivered) != 0 || c.calls != 0 {
				t.Errorf("%d ranges of the new version delivered", c.calls)
			}
			log := srv.Log()
			want := `"`
			if tc.opts.NoETag {
				want = "Mon, 01 Jan 2024"
			}
			if !strings.HasPrefix(log[1].IfRange, want) {
				t.Errorf("If-Range %q, want %s…", log[1].IfRange, want)
			}
		})
	}
}

func TestConcurrentCalls(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{TLS: true, HTTP2: true, DropAfter: 5000, Faults: 4})
	src := newSource(t, srv.URL(), Options{Client: srv.Client()})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ranges := spaced(int64(g)*20_000, 500, 700, 16)
			c, err := fetch(src, data, ranges)
			if err == nil && len(c.delivered) != len(ranges) {
				err = errors.New("not all delivered")
			}
			errs[g] = err
		}()
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", g, err)
		}
	}
	for _, r := range srv.Log() {
		if r.Proto != "HTTP/2.0" {
			t.Errorf("proto %s, want HTTP/2.0", r.Proto)
		}
	}
}

func TestHTTPSDefaultClientRejectsUnknownCA(t *testing.T) {
	data := testData(1000)
	srv := newServer(t, data, faultserver.Options{TLS: true})
	src := newSource(t, srv.URL(), Options{})
	_, err := fetch(src, data, []source.Range{{Start: 0, End: 10}})
	if err == nil || src.Stats().Requests != 1 {
		t.Errorf("err = %v after %d requests; want a certificate error, not retried", err, src.Stats().Requests)
	}
}

func TestRedirectReadRanges(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{RedirectFrom: "/latest"})
	src := newSource(t, srv.RedirectURL(), Options{})
	ranges := spaced(0, 100, 1000, 30)
	c, err := fetch(src, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	// Range header survives the redirect: 206s, not a 200.
	for _, r := range srv.Log() {
		if r.Path == faultserver.DefaultPath && r.Status != http.StatusPartialContent {
			t.Errorf("status %d at the target", r.Status)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	data := testData(fileSize)
	ranges := []source.Range{{Start: 0, End: 100}}
	auth := newServer(t, data, faultserver.Options{User: "u", Password: "p:w"})
	other := newServer(t, data, faultserver.Options{})
	authHost := strings.TrimPrefix(auth.BaseURL(), "http://")
	host, cred, err := ParseCredentials(authHost + "=u:p:w")
	if err != nil || host != authHost || cred != (Credentials{"u", "p:w"}) {
		t.Fatalf("ParseCredentials = %q, %+v, %v", host, cred, err)
	}
	creds := map[string]Credentials{host: cred}

	if _, err := fetch(newSource(t, auth.URL(), Options{Credentials: creds}), data, ranges); err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(newSource(t, other.URL(), Options{Credentials: creds}), data, ranges); err != nil {
		t.Fatal(err)
	}
	if a := other.Log()[0].Authorization; a != "" {
		t.Errorf("credentials sent to another port of the same host: %q", a)
	}

	// Via a redirect from another host: sent at the authorized host only.
	var seen []string
	seenMu := sync.Mutex{}
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenMu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		seenMu.Unlock()
		http.Redirect(w, r, auth.URL(), http.StatusFound)
	}))
	defer spy.Close()
	if _, err := fetch(newSource(t, spy.URL, Options{Credentials: creds}), data, ranges); err != nil {
		t.Fatal(err)
	}
	if seen[0] != "" {
		t.Errorf("credentials sent to the redirecting host: %q", seen[0])
	}
	// Credentials for the redirecting host are not forwarded.
	spyHost := strings.TrimPrefix(spy.URL, "http://")
	_, err = fetch(newSource(t, spy.URL, Options{Credentials: map[string]Credentials{spyHost: cred}}), data, ranges)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Errorf("err = %v, want 401", err)
	}
	if seen[len(seen)-1] == "" {
		t.Errorf("credentials not sent to their host")
	}
}

func TestParseCredentialsErrors(t *testing.T) {
	for _, s := range []string{"", "host", "=u:p", "host=user"} {
		if _, _, err := ParseCredentials(s); err == nil {
			t.Errorf("ParseCredentials(%q): no error", s)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, u := range []string{"ftp://x/y", "http://", "::bad"} {
		if _, err := New(u, Options{}); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
	data := testData(1000)
	srv := newServer(t, data, faultserver.Options{})
	src := newSource(t, srv.URL(), Options{})
	for _, rs := range [][]source.Range{
		{{Start: 5, End: 5}},
		{{Start: -1, End: 5}},
		{{Start: 10, End: 20}, {Start: 15, End: 30}},
		{{Start: 10, End: 20}, {Start: 0, End: 5}},
	} {
		if _, err := fetch(src, data, rs); err == nil {
			t.Errorf("%v: no error", rs)
		}
	}
	// Beyond the end of the file: a clear error, not a retry loop.
	_, err := fetch(src, data, []source.Range{{Start: 2000, End: 3000}})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("err = %v, want 416", err)
	}
	if srv.Requests() != 1 {
		t.Errorf("requests = %d", srv.Requests())
	}
}

func TestContextCanceled(t *testing.T) {
	data := testData(fileSize)
	srv := newServer(t, data, faultserver.Options{Stall: 10 * time.Second})
	src := newSource(t, srv.URL(), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c := &checker{want: data}
	err := src.ReadRanges(ctx, spaced(0, 1000, 1000, 20), c.fn)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}
