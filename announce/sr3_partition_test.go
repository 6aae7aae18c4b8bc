//go:build unix

package announce

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// TestSR3GoldenPartitions: the partition messages real sr3_post wrote for
// v03/testdata/file.bin (blockSize 2048: three partitions, the last of 904
// bytes) are assembled into the file, in any order.
func TestSR3GoldenPartitions(t *testing.T) {
	ctx := brokertest.Context(t, time.Minute)
	pubDir, subDir := t.TempDir(), t.TempDir()
	srv := serve(t, pubDir)
	data, err := os.ReadFile("../v03/testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(pubDir, "data/a/b/file.bin"), data)
	f, err := os.Open("../v03/testdata/sr3-post.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bodies [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var g struct{ Case, Body string }
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(g.Case, "blocks-") {
			bodies = append(bodies, []byte(strings.Replace(g.Body, "http://example.com/data", srv.URL+"/data", 1)))
		}
	}
	if len(bodies) != 3 {
		t.Fatalf("%d partition messages in the golden file", len(bodies))
	}
	sub, err := NewSubscriber(SubscriberOptions{Dir: subDir, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	var last Result
	for _, i := range []int{2, 0, 1} {
		if last = sub.Handle(ctx, bodies[i]); last.Action == Rejected {
			t.Fatalf("%+v", last)
		}
	}
	if last.Action != Assembled {
		t.Fatalf("%+v", last)
	}
	sameFile(t, filepath.Join(pubDir, "data/a/b/file.bin"), filepath.Join(subDir, "a/b/file.bin"))
}

// TestSubscribeToSR3PostPartitioned: zsyncpipe's Subscriber receives what
// the real sr3_post announces of a file in partitions (blocksize 256 KiB)
// and assembles it: the partitions the old version holds are copied, the
// others fetched as byte ranges (sr3's messages carry no control file).
func TestSubscribeToSR3PostPartitioned(t *testing.T) {
	sr3Post := sr3Bin(t, "sr3_post")
	amqpURL := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	exchange := fmt.Sprintf("xsr3parts_%d", rand.Uint32())
	home := t.TempDir()
	f := newFixture(t, nil)

	const psize, size = 256 << 10, 1<<20 + 5000
	old := randomBytes(90, size)
	changed := bytes.Clone(old)
	copy(changed[psize+1000:], randomBytes(91, 5000))
	write(t, filepath.Join(f.subDir, "obs/big.bin"), old)
	write(t, filepath.Join(f.pubDir, "obs/big.bin"), changed)

	opts := broker.Options{Exchange: exchange, Queue: broker.QueueName("guest", "subscribe", "sr3parts", fmt.Sprint(rand.Uint32()))}
	conn, err := broker.Dial(ctx, amqpURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	in, err := conn.Subscribe(runCtx)
	if err != nil {
		t.Fatal(err)
	}
	go f.sub.Serve(runCtx, in)

	sr3Config(t, home, "post", "p",
		"post_broker "+amqpURL,
		"post_exchange "+exchange,
		"post_baseUrl "+f.srv.URL+"/",
		"post_baseDir "+f.pubDir,
		fmt.Sprintf("blocksize %d", psize))
	cmd := exec.CommandContext(ctx, sr3Post, "-c", "p", filepath.Join(f.pubDir, "obs/big.bin"))
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sr3_post: %v\n%s", err, out)
	}
	var fetched, reused int64
	assembled := 0
	for range 5 {
		r := f.next(t, ctx)
		// Unchanged: copied from the old version by the sweep of an
		// earlier message before its own message came.
		if r.Action != PartitionIn && r.Action != Assembled && r.Action != Unchanged {
			t.Fatalf("%+v\nsr3_post output:\n%s", r, out)
		}
		fetched += r.Fetched
		reused += r.Reused
		if r.Action == Assembled {
			assembled++
		}
	}
	if assembled != 1 {
		t.Errorf("assembled %d times", assembled)
	}
	f.same(t, "obs/big.bin")
	t.Logf("sr3_post's 5 partition messages assembled: fetched %d bytes, copied %d", fetched, reused)
	// sr3 3.03.01's identity of partition 0 covers the first MiB, which
	// holds the change: partitions 0 and 1 are fetched, the others copied.
	if fetched > 2*psize || reused < 2*psize {
		t.Errorf("fetched %d bytes of %d, copied %d", fetched, size, reused)
	}
}

// TestSR3SubscribeReassembles: a real "sr3 subscribe" with sr3's
// block_reassembly callback receives zsyncpipe's partition messages,
// downloads each partition as a byte range and reassembles the file
// byte-exact.
func TestSR3SubscribeReassembles(t *testing.T) {
	sr3 := sr3Bin(t, "sr3")
	py := filepath.Join(filepath.Dir(sr3), "python")
	testtool.Require(t, "sr3's block_reassembly needs the Python module flufl.lock in sr3's venv",
		exec.Command(py, "-c", "import flufl.lock").Run())
	amqpURL := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	exchange := fmt.Sprintf("xzsparts_%d", rand.Uint32())
	home, sr3Dir := t.TempDir(), t.TempDir()
	pubConn, err := broker.Dial(ctx, amqpURL, broker.Options{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	f := newFixture(t, pubConn)
	f.pub.opts.PartitionSize = 256 << 10
	big := randomBytes(92, 1<<20+3000)
	write(t, filepath.Join(f.pubDir, "a/b/big.bin"), big)
	// block_reassembly.inc, which sr3 3.03.01 does not ship, spelled out.
	sr3Config(t, home, "subscribe", "zs",
		"broker "+amqpURL, "exchange "+exchange, "topicPrefix v03", "subtopic #",
		"directory "+sr3Dir, "mirror on", "inplace on", "inflight None", "logLevel info",
		`reject .*\.flufl_lock.*`, "reject .*§block_manifest§.*", "callback_prepend block_reassembly",
		"accept .*")
	var log logBuffer
	defer startSR3(t, sr3, home, "subscribe/zs", &log)()
	waitFor(t, "sr3 to bind its queue", time.Minute, &log, func() bool {
		return strings.Contains(strings.ToLower(log.String()), "binding")
	})
	if err := f.pub.Announce(ctx, Change{Op: Write, Path: "a/b/big.bin"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sr3 to reassemble a/b/big.bin", time.Minute, &log, func() bool {
		got, err := os.ReadFile(filepath.Join(sr3Dir, "a/b/big.bin"))
		return err == nil && bytes.Equal(got, big)
	})
	if !strings.Contains(log.String(), "completed reassembly") {
		t.Errorf("sr3 did not report the reassembly:\n%s", log.String())
	}
}
