package v03_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

func TestMain(m *testing.M) {
	code := m.Run()
	brokertest.StopShared()
	os.Exit(code)
}

// updateEnv names the environment variable that makes TestSR3Partitions
// rewrite testdata/sr3-blocks.jsonl from what sr3 sends instead of
// comparing with it.
const updateEnv = "V03_UPDATE_GOLDEN"

// goldenLine is one line of testdata/sr3-blocks.jsonl, the format of the
// other golden files.
type goldenLine struct {
	Case        string `json:"case"`
	Topic       string `json:"topic"`
	ContentType string `json:"contentType"`
	Body        string `json:"body"`
}

// sr3Post returns the path of sr3_post: the one of .ci/run's virtual
// environment, or one in PATH.
func sr3Post(t *testing.T) string {
	t.Helper()
	if p := "/opt/sr3venv/bin/sr3_post"; fileExists(p) {
		return p
	}
	return testtool.Look(t, "sr3_post", "python3-venv (pip install metpx-sr3 amqp paho-mqtt)")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sr3Case is one partitioned posting by sr3_post of testdata/file.bin.
type sr3Case struct {
	name      string
	blockSize int
	identity  string
	bufSize   int // sr3's bufSize option; 0: its default (1 MiB)
}

var sr3Cases = []sr3Case{
	{"sha512-2048", 2048, "sha512", 0},          // 2 full partitions and one of 904 bytes
	{"md5-1000", 1000, "md5", 0},                // 5 full partitions
	{"sha512-1024-buf512", 1024, "sha512", 512}, // identities of more than the partition
}

// TestSR3Partitions runs the real sr3_post (metpx-sr3) with the blockSize
// option on testdata/file.bin against RabbitMQ and compares the messages it
// sends, all but pubTime and atime, with testdata/sr3-blocks.jsonl (which it
// rewrites when V03_UPDATE_GOLDEN is set). The golden messages are then
// checked by the v03 package's own tests.
func TestSR3Partitions(t *testing.T) {
	t.Parallel() // its own exchanges and HOME: runs beside the other sr3 tests
	post := sr3Post(t)
	amqpURL := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	data, err := os.ReadFile("testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 12, 1, 22, 24, 35, 707700491, time.UTC)
	var got []goldenLine
	for _, c := range sr3Cases {
		home, dir := t.TempDir(), t.TempDir()
		path := filepath.Join(dir, "a", "b", "file.bin")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		exchange := fmt.Sprintf("xv03blocks_%d", rand.Uint32())
		opts := broker.Options{Exchange: exchange, Queue: broker.QueueName("guest", "subscribe", "v03blocks", fmt.Sprint(rand.Uint32()))}
		conn, err := broker.Dial(ctx, amqpURL, opts)
		if err != nil {
			t.Fatal(err)
		}
		subCtx, stop := context.WithCancel(ctx)
		in, err := conn.Subscribe(subCtx)
		if err != nil {
			t.Fatal(err)
		}
		conf := strings.Join([]string{
			"post_broker " + amqpURL,
			"post_exchange " + exchange,
			"post_baseUrl http://example.com/data",
			"post_baseDir " + dir,
			"identity " + c.identity,
			fmt.Sprintf("blockSize %d", c.blockSize),
		}, "\n") + "\n"
		if c.bufSize > 0 {
			conf += fmt.Sprintf("bufSize %d\n", c.bufSize)
		}
		confDir := filepath.Join(home, ".config", "sr3", "post")
		if err := os.MkdirAll(confDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(confDir, "p.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, post, "-c", "p", path)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: sr3_post: %v\n%s", c.name, err, out)
		}
		n := (len(data) + c.blockSize - 1) / c.blockSize
		for i := 0; i < n; i++ {
			select {
			case d := <-in:
				got = append(got, goldenLine{Case: fmt.Sprintf("%s-%d", c.name, i), Topic: d.Topic, ContentType: d.ContentType, Body: string(d.Body)})
				if err := d.Ack(); err != nil {
					t.Fatal(err)
				}
			case <-ctx.Done():
				t.Fatalf("%s: %d of %d messages from sr3_post\n%s", c.name, i, n, out)
			}
		}
		stop()
		conn.Close()
	}
	const golden = "testdata/sr3-blocks.jsonl"
	if os.Getenv(updateEnv) != "" {
		var buf bytes.Buffer
		for _, g := range got {
			b, err := json.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(append(b, '\n'))
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d messages to %s", len(got), golden)
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(want)), "\n")
	if len(lines) != len(got) {
		t.Fatalf("sr3 sent %d messages, %s has %d", len(got), golden, len(lines))
	}
	for i, l := range lines {
		var w goldenLine
		if err := json.Unmarshal([]byte(l), &w); err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if g.Case != w.Case || g.Topic != w.Topic || g.ContentType != w.ContentType {
			t.Errorf("%s: topic %q type %q, golden %s %q %q", g.Case, g.Topic, g.ContentType, w.Case, w.Topic, w.ContentType)
		}
		if a, b := withoutPubTime(t, g.Body), withoutPubTime(t, w.Body); !reflect.DeepEqual(a, b) {
			t.Errorf("%s: sr3 sent\n%s\ngolden\n%s", g.Case, g.Body, w.Body)
		}
		if _, err := v03.Decode([]byte(g.Body)); err != nil {
			t.Errorf("%s: %v", g.Case, err)
		}
	}
}

func withoutPubTime(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	delete(m, "pubTime")
	delete(m, "atime") // sr3 reads the file: its atime is the run's
	return m
}
