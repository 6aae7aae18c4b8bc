//go:build linux

package announce

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/partition"
)

// subscriberChildEnv makes the test binary a subscriber process (see
// subscriberChild); TestMain looks for it.
const subscriberChildEnv = "ZSYNCPIPE_SUBSCRIBER_CHILD"

func init() {
	if os.Getenv(subscriberChildEnv) != "" {
		os.Exit(subscriberChild())
	}
}

// subscriberChild is a subscriber process: one worker, prefetch 1, on the
// broker, exchange and queue given in the environment, writing DIR; it
// prints each result as a JSON line and ends when its standard input
// closes.
func subscriberChild() int {
	get := func(k string) string { return os.Getenv(subscriberChildEnv + "_" + k) }
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	conn, err := broker.Dial(ctx, get("URL"), broker.Options{Exchange: get("EXCHANGE"), Queue: get("QUEUE"),
		Prefetch: 1, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer conn.Close()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	s, err := NewSubscriber(SubscriberOptions{Dir: get("DIR"), Workers: 1, NoFsync: true,
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
		OnResult: func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(map[string]any{"action": r.Action, "fetched": r.Fetched, "err": fmt.Sprint(r.Err)})
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := s.Run(ctx, conn); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// proc is a subscriber process and what it printed.
type proc struct {
	cmd   *exec.Cmd
	stdin io.Closer
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func (p *proc) results() []Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Result
	for _, l := range p.lines {
		var r struct {
			Action  Action
			Fetched int64
		}
		if json.Unmarshal([]byte(l), &r) == nil {
			out = append(out, Result{Action: r.Action, Fetched: r.Fetched})
		}
	}
	return out
}

// startSubscriber starts a subscriber process on the queue.
func startSubscriber(t *testing.T, url, exchange, queue, dir string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), subscriberChildEnv+"=1", subscriberChildEnv+"_URL="+url,
		subscriberChildEnv+"_EXCHANGE="+exchange, subscriberChildEnv+"_QUEUE="+queue, subscriberChildEnv+"_DIR="+dir)
	cmd.Stderr = &testWriter{t: t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// testWriter logs what a process writes to its standard error.
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done.Load() {
		for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			w.t.Log("subscriber: " + l)
		}
	}
	return len(p), nil
}

// declareQueue makes the queue and its binding exist before anything is
// published, as a subscriber started earlier would.
func declareQueue(t *testing.T, ctx context.Context, url, exchange, queue string) {
	t.Helper()
	c, err := broker.Dial(ctx, url, broker.Options{Exchange: exchange, Queue: queue})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	if _, err := c.Subscribe(sctx); err != nil {
		t.Fatal(err)
	}
	stop()
	c.Close()
}

// holdsData reports whether process pid has the shared partial file of
// an assembly open: it holds a claim, in the middle of a partition.
func holdsData(pid int, data string) bool {
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); err == nil && l == data {
			return true
		}
	}
	return false
}

// waitSame waits until dir/rel is the file want.
func waitSame(t *testing.T, ctx context.Context, path string, want []byte) {
	t.Helper()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(want)) {
			if got, err := os.ReadFile(path); err == nil && bytes.Equal(got, want) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never became the published file", path)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// throttled slows a response down to about 16 MiB/s: a pause of 4 ms
// after every 64 KiB.
type throttled struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (s throttled) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		n, err := s.ResponseWriter.Write(p[:k])
		total += n
		s.n.Add(int64(n))
		if err != nil {
			return total, err
		}
		p = p[k:]
		time.Sleep(4 * time.Millisecond)
	}
	return total, nil
}

// TestPartitionedSubscribersKilled: three subscriber processes on one
// RabbitMQ queue take the 16 partition messages of a 64 MiB file (4 MiB
// partitions; with ZSYNCPIPE_PARTITION_LONG set, 1 GiB in 64 MiB
// partitions) from a throttled server; one is killed with SIGKILL while it
// writes a partition. Its message goes to the others, and the file
// completes, byte-exact, assembled by one of them.
func TestPartitionedSubscribersKilled(t *testing.T) {
	url := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	psize, size := 4<<20, 64<<20
	if os.Getenv("ZSYNCPIPE_PARTITION_LONG") != "" {
		psize, size = 64<<20, 1<<30 // the case: 1 GiB in 64 MiB partitions
	}
	pubDir, subDir := t.TempDir(), t.TempDir()
	var sent atomic.Int64
	fsrv := http.FileServer(http.Dir(pubDir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fsrv.ServeHTTP(throttled{w, &sent}, r)
	}))
	defer srv.Close()
	exchange, queue := fmt.Sprintf("xt_%d", rand.Uint32()), broker.QueueName("guest", "subscribe", "test", fmt.Sprint(rand.Uint32()))
	declareQueue(t, ctx, url, exchange, queue)
	pubConn, err := broker.Dial(ctx, url, broker.Options{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	pub, err := NewPublisher(PublisherOptions{Dir: pubDir, BaseURL: srv.URL + "/", Conn: pubConn, PartitionSize: int64(psize)})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(80, size)
	write(t, filepath.Join(pubDir, "big.bin"), data)
	var procs []*proc
	for range 3 {
		procs = append(procs, startSubscriber(t, url, exchange, queue, subDir))
	}
	if err := pub.Announce(ctx, Change{Op: Write, Path: "big.bin"}); err != nil {
		t.Fatal(err)
	}
	dataPath := partition.New(filepath.Join(subDir, "big.bin"), partition.Options{}).DataPath()
	victim := procs[0].cmd.Process.Pid
	for !holdsData(victim, dataPath) || sent.Load() < int64(psize) {
		select {
		case <-ctx.Done():
			t.Fatal("the first subscriber never wrote a partition")
		case <-time.After(2 * time.Millisecond):
		}
	}
	procs[0].cmd.Process.Signal(syscall.SIGKILL)
	<-procs[0].done
	before := sent.Load()
	t.Logf("killed subscriber %d in the middle of a partition, %d bytes sent", victim, before)

	waitSame(t, ctx, filepath.Join(subDir, "big.bin"), data)
	time.Sleep(200 * time.Millisecond) // the last results
	assembled, handled := 0, 0
	for i, p := range procs[1:] {
		n, _ := count(p.results(), Assembled)
		k, _ := count(p.results(), PartitionIn)
		t.Logf("subscriber %d: %d partitions in, assembled %d", i+1, k, n)
		assembled += n
		handled += n + k
	}
	if assembled != 1 {
		t.Errorf("assembled %d times", assembled)
	}
	if handled == 0 {
		t.Error("the surviving subscribers did nothing")
	}
	t.Logf("%d bytes sent in all for a file of %d", sent.Load(), size)
	if sent.Load() > int64(size+2*psize) {
		t.Errorf("%d bytes sent for a file of %d", sent.Load(), size)
	}
}

// paced writes a response at rate bytes a second, in pieces of at most
// 64 KiB, each sent when the bytes before it have had their time. It
// counts bytes, not writes: net/http's file server writes 32 KiB at a
// time, and a pause per write meant for 64 KiB held every connection to
// half the rate asked for.
type paced struct {
	http.ResponseWriter
	rate    int64 // bytes a second
	start   time.Time
	written int64
}

func (p *paced) Write(b []byte) (int, error) {
	total := 0
	for len(b) > 0 {
		if p.start.IsZero() {
			p.start = time.Now()
		}
		k := min(len(b), 64<<10)
		n, err := p.ResponseWriter.Write(b[:k])
		total += n
		p.written += int64(n)
		if err != nil {
			return total, err
		}
		b = b[k:]
		time.Sleep(time.Until(p.start.Add(time.Duration(p.written * int64(time.Second) / p.rate))))
	}
	return total, nil
}

// TestPartitionScaling measures how a new file of ZSYNCPIPE_PARTITION_BENCH
// MiB (1024: 1 GiB), announced in 64 MiB partitions (1/16 of the file for
// smaller sizes), arrives at 1, 2 and 4 subscriber processes of one queue
// from a loopback HTTP server: the time from the announcement to the
// verified file in place. With ZSYNCPIPE_PARTITION_BENCH_RATE=KiB each
// connection of the server is limited to that rate. It runs only when
// the variable is set.
func TestPartitionScaling(t *testing.T) {
	mib, _ := strconv.Atoi(os.Getenv("ZSYNCPIPE_PARTITION_BENCH"))
	if mib <= 0 {
		t.Skip("set ZSYNCPIPE_PARTITION_BENCH=1024 to measure (a benchmark, not a check)")
	}
	url := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 20*time.Minute)
	size := int64(mib) << 20
	psize := min(int64(64<<20), size/16)
	pubDir := t.TempDir()
	var srvURL string
	if kib, _ := strconv.Atoi(os.Getenv("ZSYNCPIPE_PARTITION_BENCH_RATE")); kib > 0 {
		// Every connection limited to kib KiB/s, as flows over a long
		// link are: then the transfer scales with the connections.
		fsrv := http.FileServer(http.Dir(pubDir))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fsrv.ServeHTTP(&paced{ResponseWriter: w, rate: int64(kib) << 10}, r)
		}))
		defer srv.Close()
		srvURL = srv.URL
		t.Logf("each connection limited to %d KiB/s", kib)
	} else {
		srvURL = serve(t, pubDir).URL
	}
	data := randomBytes(99, int(size))
	write(t, filepath.Join(pubDir, "big.bin"), data)
	data = nil
	var base time.Duration
	for _, k := range []int{1, 2, 4} {
		exchange, queue := fmt.Sprintf("xb_%d", rand.Uint32()), broker.QueueName("guest", "subscribe", "bench", fmt.Sprint(rand.Uint32()))
		declareQueue(t, ctx, url, exchange, queue)
		pubConn, err := broker.Dial(ctx, url, broker.Options{Exchange: exchange})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := NewPublisher(PublisherOptions{Dir: pubDir, BaseURL: srvURL + "/", Conn: pubConn, PartitionSize: psize})
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(pubDir, filepath.FromSlash(ManifestPath("big.bin")))) // announce every partition
		msgs, save, err := pub.PartitionMessages(ctx, "big.bin")                      // control files made before the clock starts
		if err != nil {
			t.Fatal(err)
		}
		subDir := t.TempDir()
		var procs []*proc
		for range k {
			procs = append(procs, startSubscriber(t, url, exchange, queue, subDir))
		}
		time.Sleep(2 * time.Second) // connected and consuming
		start := time.Now()
		for _, m := range msgs {
			if err := pub.publish(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		save()
		target := filepath.Join(subDir, "big.bin")
		for {
			if fi, err := os.Stat(target); err == nil && fi.Size() == size {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("not assembled")
			case <-time.After(10 * time.Millisecond):
			}
		}
		el := time.Since(start)
		if k == 1 {
			base = el
		}
		var cpu time.Duration
		per := make([]int, k)
		for i, p := range procs {
			p.stdin.Close()
			<-p.done
			cpu += p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
			for _, r := range p.results() {
				if r.Action == PartitionIn || r.Action == Assembled {
					per[i]++
				}
			}
		}
		t.Logf("%d subscriber(s): %d MiB in %d partitions of %d MiB in %v (%.0f MiB/s, speed-up %.2f), CPU of the subscribers %v; partitions per subscriber %v",
			k, mib, len(msgs), psize>>20, el.Round(time.Millisecond), float64(size>>20)/el.Seconds(), base.Seconds()/el.Seconds(), cpu.Round(time.Millisecond), per)
		pubConn.Close()
		os.RemoveAll(subDir)
	}
}
