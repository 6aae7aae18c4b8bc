package zsyncpipe

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// Tests of Sync over HTTP against internal/faultserver: every fault either
// ends in a byte-exact verified result or in a classified error, and in both
// cases the existing output is untouched and nothing but the partial result
// and its state is left beside it.

const (
	netBlocksize = 1024
	netName      = "target.bin"
)

// netFresh is a region of the target that is new random data: every block
// wholly inside it has to be fetched.
var netFresh = source.Range{Start: 100_000, End: 116_384}

// netData returns an old version (the existing output, 512 KiB) and a new
// version (the target) derived from it by a few edits and a fresh region at
// netFresh.
func netData(seed uint64) (old, target []byte) {
	rng := rand.New(rand.NewPCG(seed, 99))
	old = randomBytes(rng, 512<<10)
	t := mutate(rng, old, netBlocksize, 24)
	pos := netFresh.Start
	target = slices.Concat(t[:pos], randomBytes(rng, int(netFresh.Len())), t[pos:])
	return old, target
}

// netControl makes the control file of target with the given URLs and passes
// it through control.Write and control.Read, as a file would travel.
func netControl(t testing.TB, target []byte, legacy bool, urls ...string) *control.File {
	t.Helper()
	f, err := Make(context.Background(), bytes.NewReader(target), MakeOptions{
		Filename: netName, Blocksize: netBlocksize, Legacy: legacy, URLs: urls,
	})
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	return travel(t, f)
}

// netHTTP are HTTP options that keep failing cases short.
func netHTTP() httpsource.Options {
	return httpsource.Options{Retries: 2, Backoff: 10 * time.Millisecond, IdleTimeout: 500 * time.Millisecond}
}

// netFetch makes several small ReadRanges calls, hence several requests,
// out of the few missing ranges of the test data.
func netFetch() stages.FetchLimits {
	return stages.FetchLimits{RangesPerCall: 4, CallBytes: 16 << 10}
}

// netDir returns a directory holding the old version at netName, and the
// output path.
func netDir(t testing.TB, old []byte) (dir, out string) {
	t.Helper()
	dir = t.TempDir()
	out = filepath.Join(dir, netName)
	if err := os.WriteFile(out, old, 0o640); err != nil {
		t.Fatal(err)
	}
	return dir, out
}

// netCheckDir fails unless dir holds exactly the files named.
func netCheckDir(t testing.TB, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}

// netCheckResult fails unless path holds want.
func netCheckResult(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d-byte target", path, len(got), len(want))
	}
}

// netRanges parses a "bytes=a-b,c-d" header as sent by httpsource.
func netRanges(t testing.TB, h string) []source.Range {
	t.Helper()
	if h == "" {
		return nil
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		t.Fatalf("bad Range header %q", h)
	}
	var rs []source.Range
	for _, p := range strings.Split(spec, ",") {
		a, b, _ := strings.Cut(p, "-")
		s, err1 := strconv.ParseInt(a, 10, 64)
		e, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad Range header %q", h)
		}
		rs = append(rs, source.Range{Start: s, End: e + 1})
	}
	return rs
}

// netBlocksRequested returns the blocks wholly inside the ranges asked of
// the server (with a 200 answer to a request without Range, none).
func netBlocksRequested(t testing.TB, log []faultserver.Request, length int64) map[int64]bool {
	t.Helper()
	blocks := make(map[int64]bool)
	for _, r := range log {
		for _, rg := range netRanges(t, r.Range) {
			for b := (rg.Start + netBlocksize - 1) / netBlocksize; b*netBlocksize < rg.End; b++ {
				if min((b+1)*netBlocksize, length) <= rg.End {
					blocks[b] = true
				}
			}
		}
	}
	return blocks
}

func TestSyncFaults(t *testing.T) {
	old, target := netData(1)
	type tc struct {
		name string
		opts faultserver.Options
		// wantErr lists the errors the failure must wrap; none for success.
		wantErr []error
		// msg is a piece of the error message.
		msg string
		// serial runs one fetch call at a time, so that requests reach
		// the server in a known order.
		serial bool
		// extra is the least number of requests beyond those of a sync
		// without faults (the faults must have happened).
		extra int
		// fewer says the fault makes fewer requests than a sync without
		// faults (a server ignoring ranges is read in one stream).
		fewer bool
		// status is an answer that must be in the server's log.
		status int
		check  func(t *testing.T, srv *faultserver.Server, sum *Summary)
	}
	fetchFailed := []error{ErrFetch}
	cases := []tc{
		{name: "normal", check: func(t *testing.T, srv *faultserver.Server, sum *Summary) {
			ifRange := 0
			for _, r := range srv.Log() {
				if r.Status != 206 || r.Range == "" {
					t.Errorf("request %+v not a range answered with 206", r)
				}
				if r.IfRange != "" {
					ifRange++
				}
			}
			if ifRange == 0 {
				t.Error("no request carried If-Range")
			}
		}},
		{name: "drop-mid-body-twice", opts: faultserver.Options{DropAfter: 1500, Faults: 2}, extra: 2},
		{name: "drop-mid-body-always", opts: faultserver.Options{DropAfter: 500},
			wantErr: fetchFailed, msg: "gave up after 3 attempts"},
		{name: "200-instead-of-206", opts: faultserver.Options{IgnoreRanges: true}, status: 200, fewer: true, check: func(t *testing.T, srv *faultserver.Server, sum *Summary) {
			if sum.Overhead < sum.Fetched {
				t.Errorf("overhead %d: whole-file answers should cost more than the %d bytes needed", sum.Overhead, sum.Fetched)
			}
			// Once, normally (TestSyncIgnoredRangesSummary checks that);
			// with this test's short IdleTimeout, a loaded machine may
			// make the stream start again once.
			if sum.Downloaded > 2*sum.Length+64<<10 {
				t.Errorf("downloaded %d for a %d-byte file: read more than twice", sum.Downloaded, sum.Length)
			}
		}},
		{name: "multi-range-refused-416", opts: faultserver.Options{MaxRanges: 1}, extra: 1, status: 416, check: netCheckSingleRanges},
		{name: "multi-range-refused-501", opts: faultserver.Options{MaxRanges: 2, RejectStatus: 501}, extra: 1, status: 501},
		{name: "multi-range-answered-200", opts: faultserver.Options{MaxRanges: 1, RejectStatus: 200}, status: 200},
		{name: "ranges-coalesced", opts: faultserver.Options{Coalesce: true}},
		{name: "wrong-bytes", opts: faultserver.Options{CorruptRange: source.Range{Start: netFresh.Start + 5000, End: netFresh.Start + 5010}},
			wantErr: []error{ErrFetch, source.ErrCorrupt}, msg: "failed its checksum"},
		{name: "503-retry-after-twice", opts: faultserver.Options{Status503: true, RetryAfter: "1", Faults: 2}, extra: 2, status: 503,
			check: func(t *testing.T, srv *faultserver.Server, sum *Summary) {
				if sum.Duration < 900*time.Millisecond {
					t.Errorf("sync took %v: Retry-After: 1 was not honoured", sum.Duration)
				}
			}},
		{name: "503-always", opts: faultserver.Options{Status503: true}, wantErr: fetchFailed, msg: "503 Service Unavailable"},
		{name: "429-retry-after-once", opts: faultserver.Options{Status429: true, RetryAfter: "1", Faults: 1}, extra: 1, status: 429},
		{name: "429-always", opts: faultserver.Options{Status429: true, RetryAfter: "0"}, wantErr: fetchFailed, msg: "429 Too Many Requests"},
		{name: "stall-once", opts: faultserver.Options{Stall: 5 * time.Second, Faults: 1}, extra: 1,
			check: func(t *testing.T, srv *faultserver.Server, sum *Summary) {
				if sum.Duration > 4*time.Second {
					t.Errorf("sync took %v: the stall was waited out, not detected", sum.Duration)
				}
			}},
		{name: "stall-always", opts: faultserver.Options{Stall: 5 * time.Second}, wantErr: fetchFailed, msg: "stalled"},
		{name: "changed-if-range", opts: faultserver.Options{ChangeAfter: 3}, serial: true,
			wantErr: []error{ErrFetch, httpsource.ErrChanged}, msg: "ETag"},
		{name: "changed-if-range-ignored", opts: faultserver.Options{ChangeAfter: 3, IgnoreIfRange: true}, serial: true,
			wantErr: []error{ErrFetch, httpsource.ErrChanged}, msg: "ETag"},
		{name: "changed-no-etag", opts: faultserver.Options{ChangeAfter: 3, NoETag: true}, serial: true,
			wantErr: []error{ErrFetch, httpsource.ErrChanged}, msg: "Last-Modified"},
	}
	// The requests of a sync without faults.
	base := faultserver.New(target, faultserver.Options{})
	defer base.Close()
	_, out := netDir(t, old)
	if _, err := Sync(context.Background(), SyncOptions{Control: netControl(t, target, false, base.URL()), Output: out, HTTP: netHTTP(), Fetch: netFetch()}); err != nil {
		t.Fatal(err)
	}
	baseRequests := base.Requests()
	if baseRequests < 8 {
		t.Fatalf("only %d requests without faults: too few to test with", baseRequests)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := faultserver.New(target, c.opts)
			t.Cleanup(srv.Close)
			f := netControl(t, target, false, srv.URL())
			dir, out := netDir(t, old)
			fo := netFetch()
			if c.serial {
				fo.Concurrency = 1
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sum, err := Sync(ctx, SyncOptions{Control: f, Output: out, HTTP: netHTTP(), Fetch: fo, NoFsync: true})
			if c.status != 0 && !slices.ContainsFunc(srv.Log(), func(r faultserver.Request) bool { return r.Status == c.status }) {
				t.Errorf("no %d answer in the server's log", c.status)
			}
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Sync: %v", err)
				}
				netCheckResult(t, out, target)
				netCheckDir(t, dir, netName)
				if sum.Requests == 0 || sum.Fetched == 0 || sum.Reused+sum.Fetched != int64(len(target)) {
					t.Errorf("summary: %d requests, reused %d + fetched %d, want > 0 requests and a sum of %d",
						sum.Requests, sum.Reused, sum.Fetched, len(target))
				}
				if sum.Requests != srv.Requests() {
					t.Errorf("summary counts %d requests, the server %d", sum.Requests, srv.Requests())
				}
				if n := srv.Requests(); !c.fewer && n < baseRequests+int64(c.extra) {
					t.Errorf("%d requests, want at least %d + %d: the faults did not happen", n, baseRequests, c.extra)
				}
				if c.check != nil {
					c.check(t, srv, sum)
				}
				return
			}
			if err == nil {
				t.Fatal("Sync succeeded, want a failure")
			}
			t.Logf("error: %v", err)
			for _, want := range c.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error does not wrap %q", want)
				}
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error should contain %q", c.msg)
			}
			// A block failing its hash is reported by the fetch stage,
			// which names the block; the others name the URL.
			if !errors.Is(err, source.ErrCorrupt) && !strings.Contains(err.Error(), srv.URL()) {
				t.Errorf("error should name the URL %s", srv.URL())
			}
			netCheckResult(t, out, old)
			netCheckDir(t, dir, netName, netName+".part", netName+".part.state")

			// The partial result is good to go on from: a healthy server
			// completes the sync, fetching no block verified before.
			st, why := loadState(out+".part", f, controlID(f))
			if st == nil {
				t.Fatalf("no usable resume state: %q", why)
			}
			good := faultserver.New(target, faultserver.Options{})
			t.Cleanup(good.Close)
			f.URLs = []string{good.URL()}
			if _, err := Sync(ctx, SyncOptions{Control: f, Output: out, HTTP: netHTTP(), Fetch: fo, NoFsync: true}); err != nil {
				t.Fatalf("Sync after the failure: %v", err)
			}
			netCheckResult(t, out, target)
			netCheckDir(t, dir, netName)
			for b := range netBlocksRequested(t, good.Log(), int64(len(target))) {
				if st.done(b) {
					t.Errorf("block %d fetched again though the failed sync had verified it", b)
				}
			}
		})
	}
}

// netCheckSingleRanges checks that a server refusing several ranges ends up
// asked for one range per request.
func netCheckSingleRanges(t *testing.T, srv *faultserver.Server, sum *Summary) {
	log := srv.Log()
	n := 0
	for _, r := range log {
		if r.Status == 206 && !strings.Contains(r.Range, ",") {
			n++
		}
		if r.Status == 206 && strings.Contains(r.Range, ",") {
			t.Errorf("request for several ranges answered with 206: %+v", r)
		}
	}
	if n == 0 {
		t.Error("no single-range request answered")
	}
}

func TestSyncMirrors(t *testing.T) {
	old, target := netData(2)
	whole := source.Range{Start: 0, End: int64(len(target))}
	runWith := func(t *testing.T, fo stages.FetchLimits, opts ...faultserver.Options) ([]*faultserver.Server, *Summary, error) {
		var srvs []*faultserver.Server
		var urls []string
		for _, o := range opts {
			s := faultserver.New(target, o)
			t.Cleanup(s.Close)
			srvs = append(srvs, s)
			urls = append(urls, s.URL())
		}
		// The first URL in the control file, the others as mirrors.
		f := netControl(t, target, false, urls[0])
		dir, out := netDir(t, old)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sum, err := Sync(ctx, SyncOptions{Control: f, Output: out, MirrorURLs: urls[1:], HTTP: netHTTP(), Fetch: fo, NoFsync: true})
		if err == nil {
			netCheckResult(t, out, target)
			netCheckDir(t, dir, netName)
		} else {
			netCheckResult(t, out, old)
			netCheckDir(t, dir, netName, netName+".part", netName+".part.state")
		}
		return srvs, sum, err
	}
	run := func(t *testing.T, opts ...faultserver.Options) ([]*faultserver.Server, *Summary, error) {
		return runWith(t, netFetch(), opts...)
	}

	t.Run("parallel", func(t *testing.T) {
		srvs, sum, err := run(t, faultserver.Options{}, faultserver.Options{}, faultserver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for i, s := range srvs {
			if s.Requests() == 0 {
				t.Errorf("mirror %d got no request", i)
			}
			total += s.Requests()
		}
		if sum.Requests != total {
			t.Errorf("summary counts %d requests, the servers %d", sum.Requests, total)
		}
	})

	// A mirror whose every byte is wrong is dropped at its first block, and
	// what it failed to deliver is read from the good one.
	t.Run("corrupt-mirror-dropped", func(t *testing.T) {
		srvs, sum, err := run(t, faultserver.Options{}, faultserver.Options{CorruptRange: whole})
		if err != nil {
			t.Fatal(err)
		}
		good, bad := srvs[0], srvs[1]
		if bad.Requests() == 0 {
			t.Fatal("the corrupt mirror was never used: the test proves nothing")
		}
		// Only the calls in flight when it was dropped reached it.
		if n := bad.Requests(); n > 4 {
			t.Errorf("corrupt mirror got %d requests, want at most one per call in flight (4)", n)
		}
		if good.Requests() < 8 {
			t.Errorf("good mirror got only %d requests", good.Requests())
		}
		// The ranges asked of the bad mirror were asked again of the good one.
		again := netBlocksRequested(t, good.Log(), int64(len(target)))
		for b := range netBlocksRequested(t, bad.Log(), int64(len(target))) {
			if !again[b] {
				t.Errorf("block %d, served corrupt, was not fetched from the good mirror", b)
			}
		}
		if sum.Reused+sum.Fetched < int64(len(target)) {
			t.Errorf("reused %d + fetched %d < %d", sum.Reused, sum.Fetched, len(target))
		}
	})

	// A mirror that corrupts part of the file is dropped when the first bad
	// block arrives, in the middle of a call; the rest of the call comes
	// from the other mirror, and the dropped one gets no further request.
	// One call at a time, so that calls alternate between the mirrors and
	// the order of requests is known.
	t.Run("corrupt-part-mirror", func(t *testing.T) {
		fo := netFetch()
		fo.Concurrency = 1
		bad := source.Range{Start: netFresh.Start + 8192, End: netFresh.End}
		srvs, _, err := runWith(t, fo, faultserver.Options{CorruptRange: bad}, faultserver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		log, good := srvs[0].Log(), srvs[1]
		if len(log) == 0 {
			t.Fatal("the corrupt mirror was never used")
		}
		for _, r := range log {
			t.Logf("corrupt mirror asked for %s", r.Range)
		}
		corrupt := func(r faultserver.Request) bool {
			for _, rg := range netRanges(t, r.Range) {
				if rg.Start < bad.End && rg.End > bad.Start {
					return true
				}
			}
			return false
		}
		for i, r := range log {
			if corrupt(r) != (i == len(log)-1) {
				t.Errorf("request %d of %d to the corrupt mirror (%s): the mirror should be dropped at its first corrupt answer", i+1, len(log), r.Range)
			}
		}
		last := log[len(log)-1]
		if rs := netRanges(t, last.Range); rs[0].Start+netBlocksize > bad.Start {
			t.Errorf("the call that met the corrupt bytes (%s) began with them: the test data no longer drops a mirror mid-call", last.Range)
		}
		again := netBlocksRequested(t, good.Log(), int64(len(target)))
		for b := range netBlocksRequested(t, log[len(log)-1:], int64(len(target))) {
			if (b+1)*netBlocksize > bad.Start && !again[b] {
				t.Errorf("block %d, not delivered by the dropped mirror, was not fetched from the good one", b)
			}
		}
	})

	t.Run("erroring-mirror-dropped", func(t *testing.T) {
		srvs, _, err := run(t, faultserver.Options{Status503: true}, faultserver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Each call in flight on it tries 1 + Retries times, then the
		// mirror is dropped.
		if n := srvs[0].Requests(); n == 0 || n > 4*3 {
			t.Errorf("failing mirror got %d requests, want 1 to 12", n)
		}
	})

	t.Run("all-mirrors-fail", func(t *testing.T) {
		_, _, err := run(t, faultserver.Options{Status503: true}, faultserver.Options{CorruptRange: whole})
		if !errors.Is(err, ErrFetch) || !errors.Is(err, source.ErrCorrupt) {
			t.Fatalf("err = %v, want ErrFetch and ErrCorrupt", err)
		}
		if !strings.Contains(err.Error(), "all 2 mirrors failed") || !strings.Contains(err.Error(), "503") {
			t.Errorf("error %q does not tell why each mirror failed", err)
		}
	})
}

func TestSyncRedirect(t *testing.T) {
	old, target := netData(3)
	srv := faultserver.New(target, faultserver.Options{RedirectFrom: "/latest/" + netName})
	t.Cleanup(srv.Close)
	f := netControl(t, target, false, srv.RedirectURL())
	dir, out := netDir(t, old)
	if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, HTTP: netHTTP(), Fetch: netFetch()}); err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
	redirects, ranges := 0, 0
	for _, r := range srv.Log() {
		switch r.Status {
		case 302:
			redirects++
		case 206:
			ranges++
		default:
			t.Errorf("unexpected answer %+v", r)
		}
	}
	if redirects == 0 || ranges == 0 {
		t.Errorf("%d redirects and %d range answers, want some of each", redirects, ranges)
	}
}

func TestSyncHTTPS(t *testing.T) {
	old, target := netData(4)
	for _, h2 := range []bool{false, true} {
		proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		t.Run(proto, func(t *testing.T) {
			srv := faultserver.New(target, faultserver.Options{TLS: true, HTTP2: h2})
			t.Cleanup(srv.Close)
			if !strings.HasPrefix(srv.URL(), "https://") {
				t.Fatalf("server URL %s", srv.URL())
			}
			f := netControl(t, target, true, srv.URL())
			dir, out := netDir(t, old)
			ho := netHTTP()
			ho.Client = srv.Client()
			// This test is about TLS, not stalls: netHTTP's short
			// IdleTimeout is less than a TLS handshake may take on a
			// loaded machine.
			ho.IdleTimeout = 30 * time.Second
			if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, HTTP: ho, Fetch: netFetch()}); err != nil {
				t.Fatal(err)
			}
			netCheckResult(t, out, target)
			netCheckDir(t, dir, netName)
			for _, r := range srv.Log() {
				if r.Proto != proto || r.Status != 206 {
					t.Errorf("request %+v, want %s and 206", r, proto)
				}
			}
		})
	}

	// Without the test certificate in the client's roots, the sync fails at
	// once: certificate errors are not retried.
	t.Run("untrusted", func(t *testing.T) {
		srv := faultserver.New(target, faultserver.Options{TLS: true})
		t.Cleanup(srv.Close)
		f := netControl(t, target, false, srv.URL())
		dir, out := netDir(t, old)
		ho := netHTTP()
		// Retries would be quick and end with "gave up after N
		// attempts"; the error of a failure not retried has no count.
		ho.Retries, ho.Backoff = 3, time.Millisecond
		ho.IdleTimeout = 30 * time.Second // a handshake on a loaded machine is no stall
		_, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, HTTP: ho, Fetch: netFetch()})
		if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want ErrFetch naming the certificate", err)
		}
		if strings.Contains(err.Error(), "attempts") {
			t.Errorf("err = %v: certificate errors should not be retried", err)
		}
		if n := srv.Requests(); n != 0 {
			t.Errorf("server got %d requests over an untrusted connection", n)
		}
		netCheckResult(t, out, old)
		netCheckDir(t, dir, netName, netName+".part", netName+".part.state")
	})
}

// A relative URL in the control file resolves against BaseURL, the URL the
// control file came from.
func TestSyncRelativeURL(t *testing.T) {
	old, target := netData(5)
	srv := faultserver.New(target, faultserver.Options{Path: "/pub/" + netName})
	t.Cleanup(srv.Close)
	f := netControl(t, target, false, netName)
	dir, out := netDir(t, old)
	sum, err := Sync(context.Background(), SyncOptions{
		Control: f, Output: out, BaseURL: srv.BaseURL() + "/pub/" + netName + ".zsync",
		HTTP: netHTTP(), Fetch: netFetch(),
	})
	if err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
	if sum.Requests == 0 || sum.Requests != srv.Requests() {
		t.Errorf("summary counts %d requests, server %d", sum.Requests, srv.Requests())
	}
}

// TestSyncParallelRequests: a sync with many missing ranges keeps several
// range requests in flight, as the server counts them (each answer held
// for a while, as over a long round trip): up to Concurrency of them,
// over several HTTP/1.1 connections or one HTTP/2 connection; with
// Concurrency 1, one at a time over one kept-alive connection. The bytes
// served are the same either way.
func TestSyncParallelRequests(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	old := randomBytes(rng, 2<<20)
	target := bytes.Clone(old)
	const missing = 400 // separate missing blocks: 20 calls of 20 ranges
	for i := range missing {
		at := (4*i + 1) * netBlocksize
		copy(target[at:at+netBlocksize], randomBytes(rng, netBlocksize))
	}
	var served []int64
	for _, c := range []struct {
		name      string
		conc      int
		tls, h2   bool
		conns     func(n int) bool
		wantConns string
	}{
		{name: "serial", conc: 1, conns: func(n int) bool { return n == 1 }, wantConns: "1"},
		{name: "default-HTTP/1.1", conns: func(n int) bool { return n >= 2 }, wantConns: "at least 2"},
		{name: "default-HTTP/2", tls: true, h2: true, conns: func(n int) bool { return n == 1 }, wantConns: "1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := faultserver.New(target, faultserver.Options{Delay: 50 * time.Millisecond, TLS: c.tls, HTTP2: c.h2})
			t.Cleanup(srv.Close)
			dir, out := netDir(t, old)
			ho := httpsource.Options{}
			if c.tls {
				ho.Client = srv.Client()
			}
			sum, err := Sync(context.Background(), SyncOptions{Control: netControl(t, target, false, srv.URL()), Output: out,
				HTTP: ho, Fetch: stages.FetchLimits{Concurrency: c.conc, RangesPerCall: stages.DefaultRangesPerCall}, NoFsync: true})
			if err != nil {
				t.Fatal(err)
			}
			netCheckResult(t, out, target)
			netCheckDir(t, dir, netName)
			srv.Close() // every body written: BytesServed is exact
			conc := cmp.Or(c.conc, stages.DefaultConcurrency)
			t.Logf("%d requests, at most %d in flight, %d connections, %d body bytes", sum.Requests, srv.MaxInFlight(), srv.Connections(), srv.BytesServed())
			if sum.Fetched < missing*netBlocksize || sum.Requests != missing/stages.DefaultRangesPerCall {
				t.Errorf("fetched %d bytes in %d requests, want at least %d in %d", sum.Fetched, sum.Requests, missing*netBlocksize, missing/stages.DefaultRangesPerCall)
			}
			if n := srv.MaxInFlight(); n > int64(conc) || (conc == 1) != (n == 1) {
				t.Errorf("%d requests in flight at most, want %s", n, map[bool]string{true: "1", false: fmt.Sprintf("2 to %d", conc)}[conc == 1])
			}
			if n := srv.Connections(); !c.conns(n) {
				t.Errorf("%d connections, want %s", n, c.wantConns)
			}
			served = append(served, srv.BytesServed(), sum.Fetched)
		})
	}
	if len(served) == 6 && (served[0] != served[2] || served[2] != served[4] || served[1] != served[3] || served[3] != served[5]) {
		t.Errorf("body bytes served and fetched %v, want the same whatever the requests in flight", served)
	}
}
