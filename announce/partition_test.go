package announce

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// partFixture is a publisher with partitions of psize bytes, its tree
// served over HTTP, and a subscriber directory.
func partFixture(t *testing.T, psize int64) (pub *Publisher, pubDir, subDir string, srv *server) {
	pubDir, subDir = t.TempDir(), t.TempDir()
	srv = serve(t, pubDir)
	pub, err := NewPublisher(PublisherOptions{Dir: pubDir, BaseURL: srv.URL + "/", PartitionSize: psize})
	if err != nil {
		t.Fatal(err)
	}
	return pub, pubDir, subDir, srv
}

// bodies returns the encoded partition messages of rel and records them
// as announced.
func bodies(t *testing.T, ctx context.Context, pub *Publisher, rel string) [][]byte {
	t.Helper()
	msgs, save, err := pub.PartitionMessages(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if err := save(); err != nil {
		t.Fatal(err)
	}
	return out
}

// handleAll hands the bodies to n subscribers of dir at once, each body
// to one of them, twice over in another order (duplicates), and returns
// the results.
func handleAll(t *testing.T, ctx context.Context, dir string, n int, bs [][]byte) []Result {
	t.Helper()
	var mu sync.Mutex
	var out []Result
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range n {
		s, err := NewSubscriber(SubscriberOptions{Dir: dir, NoFsync: true, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				r := s.Handle(ctx, b)
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
			}
		}()
	}
	order := rand.Perm(len(bs))
	for _, i := range append(order, rand.Perm(len(bs))...) {
		work <- bs[i]
	}
	close(work)
	wg.Wait()
	return out
}

func count(rs []Result, a Action) (n int, fetched int64) {
	for _, r := range rs {
		if r.Action == a {
			n++
		}
		fetched += r.Fetched
	}
	return n, fetched
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d and %d bytes)", a, b, len(x), len(y))
	}
}

// TestPartitionedHandle: a file in partitions, handled by three
// subscribers of one directory at once, each message twice: the file is
// assembled once, byte-exact; then changed in one place and grown, only
// the partitions that changed are announced and little is fetched.
func TestPartitionedHandle(t *testing.T) {
	ctx := brokertest.Context(t, time.Minute)
	const psize = 256 << 10
	pub, pubDir, subDir, _ := partFixture(t, psize)
	data := randomBytes(50, 5*psize+1234)
	write(t, filepath.Join(pubDir, "d/big.bin"), data)
	bs := bodies(t, ctx, pub, "d/big.bin")
	if len(bs) != 6 {
		t.Fatalf("%d messages, want 6", len(bs))
	}
	var m struct {
		Blocks v03.Blocks `json:"blocks"`
		Size   int64      `json:"size"`
	}
	// The last partition goes first (for sr3's reassembly).
	if err := json.Unmarshal(bs[0], &m); err != nil || m.Blocks.Method != "inplace" || m.Blocks.Size != psize || m.Blocks.Number != 5 || len(m.Blocks.Manifest) != 6 || m.Size != 1234 {
		t.Fatalf("first message: %+v %v\n%s", m, err, bs[0])
	}
	rs := handleAll(t, ctx, subDir, 3, bs)
	if n, _ := count(rs, Assembled); n != 1 {
		t.Fatalf("assembled %d times: %+v", n, rs)
	}
	if n, _ := count(rs, Rejected); n != 0 {
		t.Fatalf("%+v", rs)
	}
	sameFile(t, filepath.Join(pubDir, "d/big.bin"), filepath.Join(subDir, "d/big.bin"))

	// A change of a few bytes in partition 2, and growth.
	copy(data[2*psize+100:], "changed")
	data = append(data, randomBytes(51, psize)...)
	write(t, filepath.Join(pubDir, "d/big.bin"), data)
	bs1 := bs
	bs = bodies(t, ctx, pub, "d/big.bin")
	if len(bs) != 3 { // partition 2, the last one (filled), a new one
		t.Fatalf("%d messages after the change, want 3", len(bs))
	}
	// The first partition of the new version, then the old version's
	// messages again (redelivered late): they must not displace it.
	first, err := NewSubscriber(SubscriberOptions{Dir: subDir, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	r0 := first.Handle(ctx, bs[0])
	if r0.Action != PartitionIn {
		t.Fatalf("%+v", r0)
	}
	for _, b := range bs1 {
		if r := first.Handle(ctx, b); r.Action != Older {
			t.Fatalf("old version's message while the new one is assembled: %+v", r)
		}
	}
	rs = append(handleAll(t, ctx, subDir, 3, bs[1:]), r0)
	if n, _ := count(rs, Assembled); n != 1 {
		t.Fatalf("assembled %d times: %+v", n, rs)
	}
	_, fetched := count(rs, Assembled)
	t.Logf("fetched %d bytes for a change of 7 bytes and %d bytes of growth", fetched, psize)
	if fetched > psize+psize/2 {
		t.Errorf("fetched %d bytes", fetched)
	}
	sameFile(t, filepath.Join(pubDir, "d/big.bin"), filepath.Join(subDir, "d/big.bin"))

	// Announced again: nothing to do.
	rs = handleAll(t, ctx, subDir, 1, bs)
	if n, _ := count(rs, Unchanged); n != len(rs) {
		t.Fatalf("%+v", rs)
	}
}

// TestPartitionGrowing: a file grown in 10 steps, announced after each:
// the subscriber ends with each state, and downloads about the growth.
func TestPartitionGrowing(t *testing.T) {
	ctx := brokertest.Context(t, 2*time.Minute)
	const psize = 128 << 10
	pub, pubDir, subDir, srv := partFixture(t, psize)
	sub, err := NewSubscriber(SubscriberOptions{Dir: subDir, NoFsync: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	all := randomBytes(60, 10*100_000)
	var announced int
	for step := 1; step <= 10; step++ {
		write(t, filepath.Join(pubDir, "log.bin"), all[:step*100_000])
		before := srv.sent.Load()
		bs := bodies(t, ctx, pub, "log.bin")
		announced += len(bs)
		var last Result
		for _, b := range bs {
			if last = sub.Handle(ctx, b); last.Action == Rejected {
				t.Fatalf("step %d: %+v", step, last)
			}
		}
		if last.Action != Assembled {
			t.Fatalf("step %d: last action %s", step, last.Action)
		}
		sameFile(t, filepath.Join(pubDir, "log.bin"), filepath.Join(subDir, "log.bin"))
		got := srv.sent.Load() - before
		t.Logf("step %d: %d messages, %d bytes sent for %d bytes of growth", step, len(bs), got, 100_000)
		if got > 100_000*12/10 {
			t.Errorf("step %d: %d bytes sent for 100000 bytes of growth", step, got)
		}
	}
	if announced > 10+8 {
		t.Errorf("%d partition messages for 10 steps of 8 partitions", announced)
	}
}

// TestPartitionHostile: partition messages that do not add up are
// rejected.
func TestPartitionHostile(t *testing.T) {
	ctx := brokertest.Context(t, time.Minute)
	pub, pubDir, subDir, _ := partFixture(t, 64<<10)
	write(t, filepath.Join(pubDir, "f.bin"), randomBytes(70, 200_000))
	bs := bodies(t, ctx, pub, "f.bin")
	sub, err := NewSubscriber(SubscriberOptions{Dir: subDir, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"number past the end": func(m map[string]any) { m["blocks"].(map[string]any)["number"] = 9 },
		"negative number":     func(m map[string]any) { m["blocks"].(map[string]any)["number"] = -1 },
		"size not the part's": func(m map[string]any) { m["size"] = 5 },
		"zero partition size": func(m map[string]any) { m["blocks"].(map[string]any)["size"] = 0 },
		"hole in manifest": func(m map[string]any) {
			delete(m["blocks"].(map[string]any)["manifest"].(map[string]any), "1")
		},
		"method": func(m map[string]any) { m["blocks"].(map[string]any)["method"] = "separate" },
		"huge": func(m map[string]any) {
			m["blocks"].(map[string]any)["size"] = int64(1) << 50
		},
		"identity not the part's": func(m map[string]any) { m["identity"].(map[string]any)["value"] = "AAAA" },
	} {
		var m map[string]any
		if err := json.Unmarshal(bs[0], &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		if r := sub.Handle(ctx, b); r.Action != Rejected {
			t.Errorf("%s: %+v", name, r)
		}
	}
	// Data that does not match the manifest is not marked in.
	if err := os.WriteFile(filepath.Join(pubDir, "f.bin"), randomBytes(71, 200_000), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := sub.Handle(ctx, bs[0]); r.Action != Rejected {
		t.Errorf("changed source: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(subDir, "f.bin")); err == nil {
		t.Error("a file was placed")
	}
}

// TestPartitionAll: with PartitionAll every partition of a changed file
// is announced again, as sr3's reassembly needs.
func TestPartitionAll(t *testing.T) {
	ctx := brokertest.Context(t, time.Minute)
	pub, pubDir, _, _ := partFixture(t, 64<<10)
	data := randomBytes(95, 300_000)
	write(t, filepath.Join(pubDir, "f.bin"), data)
	if n := len(bodies(t, ctx, pub, "f.bin")); n != 5 {
		t.Fatalf("%d messages, want 5", n)
	}
	copy(data[100:], "changed")
	write(t, filepath.Join(pubDir, "f.bin"), data)
	pub.opts.PartitionAll = true
	if n := len(bodies(t, ctx, pub, "f.bin")); n != 5 {
		t.Fatalf("%d messages with PartitionAll, want 5", n)
	}
	pub.opts.PartitionAll = false
	copy(data[200:], "changed")
	write(t, filepath.Join(pubDir, "f.bin"), data)
	if n := len(bodies(t, ctx, pub, "f.bin")); n != 1 {
		t.Fatalf("%d messages without PartitionAll, want 1", n)
	}
}

// TestPartitionParallelFetch: a partition with many scattered changes is
// fetched with several range requests in flight, as the server counts
// them (it holds each answer 100 ms), not one call at a time; the
// download stays about the changed blocks.
func TestPartitionParallelFetch(t *testing.T) {
	ctx := brokertest.Context(t, time.Minute)
	const psize = 1 << 20
	pubDir, subDir := t.TempDir(), t.TempDir()
	var held atomic.Bool
	var cur, peak, requests atomic.Int64
	fsrv := http.FileServer(http.Dir(pubDir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" && held.Load() {
			requests.Add(1)
			n := cur.Add(1)
			defer cur.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(100 * time.Millisecond)
		}
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	pub, err := NewPublisher(PublisherOptions{Dir: pubDir, BaseURL: srv.URL + "/", PartitionSize: psize})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := NewSubscriber(SubscriberOptions{Dir: subDir, NoFsync: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	handle := func() (fetched int64) {
		t.Helper()
		assembled := 0
		for _, b := range bodies(t, ctx, pub, "p.bin") {
			r := sub.Handle(ctx, b)
			if r.Action != PartitionIn && r.Action != Assembled {
				t.Fatalf("%+v", r)
			}
			if r.Action == Assembled {
				assembled++
			}
			fetched += r.Fetched
		}
		if assembled != 1 {
			t.Fatalf("assembled %d times", assembled)
		}
		sameFile(t, filepath.Join(pubDir, "p.bin"), filepath.Join(subDir, "p.bin"))
		return fetched
	}
	data := randomBytes(60, 2*psize)
	write(t, filepath.Join(pubDir, "p.bin"), data)
	handle()

	// One byte in every 8 KiB of partition 0: 128 separate blocks
	// (of 2 KiB) missing, fetched in 7 calls of up to 20 ranges.
	const changed = psize / (8 << 10)
	for i := 0; i < psize; i += 8 << 10 {
		data[i+100] ^= 0xff
	}
	write(t, filepath.Join(pubDir, "p.bin"), data)
	held.Store(true)
	fetched := handle()
	t.Logf("%d range requests, at most %d in flight; fetched %d bytes for %d changed blocks", requests.Load(), peak.Load(), fetched, changed)
	if n := peak.Load(); n < 2 || n > stages.DefaultConcurrency {
		t.Errorf("%d range requests in flight at most, want 2 to %d", n, stages.DefaultConcurrency)
	}
	if fetched < changed*2048 || fetched > changed*2048+psize/4 {
		t.Errorf("fetched %d bytes for %d changed blocks of 2 KiB", fetched, changed)
	}

	// A partition of 9 MiB announced without a control file, as sr3
	// announces: fetched as byte ranges of 4 MiB, in parallel.
	const big = 9 << 20
	pub, err = NewPublisher(PublisherOptions{Dir: pubDir, BaseURL: srv.URL + "/", PartitionSize: big})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(pubDir, "q.bin"), randomBytes(61, big+1000))
	peak.Store(0)
	requests.Store(0)
	fetched = 0
	for _, b := range bodies(t, ctx, pub, "q.bin") {
		var msg map[string]json.RawMessage
		if err := json.Unmarshal(b, &msg); err != nil || msg["zsync"] == nil {
			t.Fatalf("message without a zsync field: %v\n%s", err, b)
		}
		delete(msg, "zsync")
		if b, err = json.Marshal(msg); err != nil {
			t.Fatal(err)
		}
		r := sub.Handle(ctx, b)
		if r.Action != PartitionIn && r.Action != Assembled {
			t.Fatalf("%+v", r)
		}
		fetched += r.Fetched
	}
	sameFile(t, filepath.Join(pubDir, "q.bin"), filepath.Join(subDir, "q.bin"))
	t.Logf("without control files: %d range requests, at most %d in flight; fetched %d bytes of %d", requests.Load(), peak.Load(), fetched, big+1000)
	if n := peak.Load(); n < 2 || n > stages.DefaultConcurrency {
		t.Errorf("%d range requests in flight at most, want 2 to %d", n, stages.DefaultConcurrency)
	}
	if fetched != big+1000 {
		t.Errorf("fetched %d bytes of %d", fetched, big+1000)
	}
}
