package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/announce"
	"github.com/zsyncpipe/zsyncpipe/broker"
)

// TestAnnounceSubscribe runs "zsyncpipe subscribe" and "zsyncpipe
// announce" against a broker: the subscriber's old copy of a changed file is
// delta-synced, with the defaults of both commands agreeing.
func TestAnnounceSubscribe(t *testing.T) {
	e, err := broker.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pubDir, subDir := t.TempDir(), t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(pubDir)))
	defer srv.Close()

	r := rand.New(rand.NewPCG(1, 2))
	old := make([]byte, 1<<20)
	for i := range old {
		old[i] = byte(r.Uint32())
	}
	changed := bytes.Clone(old)
	copy(changed[5000:], "a change in the middle of the file")
	writeFile(t, filepath.Join(pubDir, "dir/data.bin"), changed)
	writeFile(t, filepath.Join(subDir, "dir/data.bin"), old)

	done := make(chan result, 1)
	go func() { done <- runZ(t, "subscribe", "--max-messages", "1", e.URL(), subDir) }()
	// The subscription may not exist yet when the first announcement goes
	// out: announce again until the subscriber is done (a duplicate is
	// harmless).
	var sub result
	for i := 0; ; i++ {
		mustRun(t, "announce", "-q", "--base-url", srv.URL+"/", e.URL(), pubDir, "dir/data.bin")
		select {
		case sub = <-done:
		case <-time.After(2 * time.Second):
			if i < 30 {
				continue
			}
			t.Fatal("subscriber did not finish")
		}
		break
	}
	if sub.code != 0 {
		t.Fatalf("subscribe: exit %d\n%s\n%s", sub.code, sub.stdout, sub.stderr)
	}
	if !strings.Contains(sub.stdout, "synced") || !strings.Contains(sub.stdout, "dir/data.bin") {
		t.Errorf("subscribe printed %q", sub.stdout)
	}
	sameBytes(t, "synced file", readFile(t, filepath.Join(subDir, "dir/data.bin")), changed)
	if _, err := filepath.Glob(filepath.Join(pubDir, ".zsyncpipe", "dir", "data.bin.zsync")); err != nil {
		t.Error(err)
	}
	readFile(t, filepath.Join(pubDir, ".zsyncpipe", "dir", "data.bin.zsync"))
}

func TestAnnounceSubscribeUsage(t *testing.T) {
	for _, args := range [][]string{
		{"subscribe"},
		{"subscribe", "mqtt://127.0.0.1:1"},
		{"subscribe", "http://host/", t.TempDir()},
		{"announce", "mqtt://127.0.0.1:1", t.TempDir(), "f"},
		{"announce", "--base-url", "http://h/", "ftp://h/", t.TempDir(), "f"},
		{"index", "--announce", "mqtt://127.0.0.1:1", t.TempDir()}, // no --base-url
	} {
		if r := runZ(t, args...); r.code != exitUsage {
			t.Errorf("zsyncpipe %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
}

// TestServeAnnounce: "zsyncpipe serve DIR --announce URL" announces the
// tree's files once their control files are in place, and later changes
// found by its watcher; a subscriber delta-syncs them from serve itself.
func TestServeAnnounce(t *testing.T) {
	e, err := broker.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pubDir, subDir := t.TempDir(), t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	old := make([]byte, 2<<20)
	for i := range old {
		old[i] = byte(r.Uint32())
	}
	changed := bytes.Clone(old)
	copy(changed[1<<20:], "changed")
	writeFile(t, filepath.Join(pubDir, "d/data.bin"), changed)
	writeFile(t, filepath.Join(subDir, "d/data.bin"), old)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := broker.Dial(ctx, e.URL(), broker.Options{Queue: "q_anonymous.subscribe.zsyncpipe.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in, err := conn.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan announce.Result, 100)
	sub, err := announce.NewSubscriber(announce.SubscriberOptions{Dir: subDir, OnResult: func(r announce.Result) { results <- r }})
	if err != nil {
		t.Fatal(err)
	}
	go sub.Serve(ctx, in)

	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		served <- run(serveCtx, []string{"serve", "-q", "--listen", "127.0.0.1:0", "--settle", "50ms", "--announce", e.URL(), pubDir}, &out, &errb)
	}()
	want := map[string]announce.Action{"d/data.bin": announce.Synced}
	wait := func() {
		t.Helper()
		for len(want) > 0 {
			select {
			case r := <-results:
				if a, ok := want[r.Path]; ok {
					if r.Action != a {
						t.Fatalf("%s: %+v, want %s", r.Path, r, a)
					}
					if r.Action == announce.Synced && r.Fetched > 100<<10 {
						t.Errorf("%s: fetched %d bytes", r.Path, r.Fetched)
					}
					delete(want, r.Path)
				}
			case <-ctx.Done():
				t.Fatalf("still waiting for %v", want)
			}
		}
	}
	wait()
	sameBytes(t, "synced file", readFile(t, filepath.Join(subDir, "d/data.bin")), changed)

	// A file added while serve runs.
	writeFile(t, filepath.Join(pubDir, "d/new.txt"), []byte("new file\n"))
	want["d/new.txt"] = announce.Inlined
	wait()
	sameBytes(t, "new file", readFile(t, filepath.Join(subDir, "d/new.txt")), []byte("new file\n"))
	stopServe()
	if code := <-served; code != 0 {
		t.Fatalf("serve: exit %d\n%s", code, errb.String())
	}
}

// TestServeAnnounceEmbedded: "serve --announce embedded://addr" runs the
// broker inside serve; a subscriber elsewhere connects to it as to any MQTT
// broker.
func TestServeAnnounceEmbedded(t *testing.T) {
	pubDir, subDir := t.TempDir(), t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		served <- run(serveCtx, []string{"serve", "-q", "--listen", "127.0.0.1:0", "--settle", "50ms", "--announce", "embedded://" + addr, pubDir}, &out, &errb)
	}()
	var conn broker.Conn
	for i := 0; ; i++ {
		conn, err = broker.Dial(ctx, "mqtt://"+addr, broker.Options{Queue: "q_anonymous.subscribe.zsyncpipe.embedded", MaxBackoff: 200 * time.Millisecond})
		if err == nil {
			break
		}
		if i > 100 {
			t.Fatalf("embedded broker of serve: %v\n%s", err, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	in, err := conn.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan announce.Result, 10)
	sub, err := announce.NewSubscriber(announce.SubscriberOptions{Dir: subDir, OnResult: func(r announce.Result) { results <- r }})
	if err != nil {
		t.Fatal(err)
	}
	go sub.Serve(ctx, in)
	writeFile(t, filepath.Join(pubDir, "later.txt"), []byte("announced through the embedded broker\n"))
	for {
		select {
		case r := <-results:
			if r.Path != "later.txt" {
				continue
			}
			if r.Action != announce.Inlined {
				t.Fatalf("%+v", r)
			}
			sameBytes(t, "later.txt", readFile(t, filepath.Join(subDir, "later.txt")), []byte("announced through the embedded broker\n"))
			stopServe()
			if code := <-served; code != 0 {
				t.Fatalf("serve: exit %d\n%s", code, errb.String())
			}
			return
		case <-ctx.Done():
			t.Fatal("nothing announced")
		}
	}
}

// TestServeAnnouncePartitioned: "serve --announce URL --partition-size
// SIZE" announces a large file as partitions, which a subscriber with the
// old version assembles fetching little; when the file grows, only the
// partitions that changed or appeared are announced.
func TestServeAnnouncePartitioned(t *testing.T) {
	e, err := broker.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pubDir, subDir := t.TempDir(), t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	old := make([]byte, 2<<20)
	for i := range old {
		old[i] = byte(r.Uint32())
	}
	changed := bytes.Clone(old)
	copy(changed[1<<20:], "changed")
	writeFile(t, filepath.Join(pubDir, "d/data.bin"), changed)
	writeFile(t, filepath.Join(subDir, "d/data.bin"), old)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := broker.Dial(ctx, e.URL(), broker.Options{Queue: "q_anonymous.subscribe.zsyncpipe.parts"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in, err := conn.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan announce.Result, 100)
	sub, err := announce.NewSubscriber(announce.SubscriberOptions{Dir: subDir, OnResult: func(r announce.Result) { results <- r }})
	if err != nil {
		t.Fatal(err)
	}
	go sub.Serve(ctx, in)

	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		served <- run(serveCtx, []string{"serve", "-q", "--listen", "127.0.0.1:0", "--settle", "50ms",
			"--announce", e.URL(), "--partition-size", "512KiB", pubDir}, &out, &errb)
	}()
	// wait returns the results up to the file's assembly.
	wait := func() (n int, fetched int64) {
		t.Helper()
		for {
			select {
			case r := <-results:
				if r.Action == announce.Rejected {
					t.Fatalf("%+v", r)
				}
				if r.Path != "d/data.bin" {
					continue
				}
				n++
				fetched += r.Fetched
				if r.Action == announce.Assembled {
					// Others may report after the one that assembled.
					for {
						select {
						case r := <-results:
							n++
							fetched += r.Fetched
						case <-time.After(300 * time.Millisecond):
							return n, fetched
						}
					}
				}
			case <-ctx.Done():
				t.Fatalf("not assembled; serve: %s", errb.String())
			}
		}
	}
	n, fetched := wait()
	if n != 4 || fetched > 100<<10 { // every partition is announced: the publisher has no manifest yet
		t.Errorf("%d messages, %d bytes fetched for a change of 7 bytes", n, fetched)
	}
	sameBytes(t, "assembled file", readFile(t, filepath.Join(subDir, "d/data.bin")), changed)

	grown := append(changed, old[:300<<10]...)
	writeFile(t, filepath.Join(pubDir, "d/data.bin.tmp"), grown) // whole, not seen half-written
	if err := os.Rename(filepath.Join(pubDir, "d/data.bin.tmp"), filepath.Join(pubDir, "d/data.bin")); err != nil {
		t.Fatal(err)
	}
	n, fetched = wait()
	if n != 1 || fetched > 400<<10 { // the new partition (the last one is the fifth)
		t.Errorf("after growth: %d messages, %d bytes fetched", n, fetched)
	}
	sameBytes(t, "grown file", readFile(t, filepath.Join(subDir, "d/data.bin")), grown)
	stopServe()
	if code := <-served; code != 0 {
		t.Fatalf("serve: exit %d\n%s", code, errb.String())
	}
}
