//go:build unix

package v03_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
)

// syncBuffer collects a process's output, safe to read while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sr3Env runs real sr3 programs for one test: a HOME of its own for their
// configuration files and state, a RabbitMQ exchange of its own (declared,
// since sr3 subscribers do not declare it), and an HTTP server of pub, the
// published tree.
type sr3Env struct {
	t        *testing.T
	ctx      context.Context
	bin      string // directory of sr3 and sr3_post
	amqpURL  string
	exchange string
	home     string
	pub      string // the tree the HTTP server serves
	url      string // the HTTP server's URL
}

// newSR3Env finds sr3 (failing under CI when it is missing), RabbitMQ and
// starts the HTTP server; everything stops when the test ends.
func newSR3Env(t *testing.T, ctx context.Context) *sr3Env {
	t.Helper()
	e := &sr3Env{t: t, ctx: ctx, bin: filepath.Dir(sr3Post(t)), amqpURL: brokertest.AMQP(t),
		exchange: fmt.Sprintf("xv03sub_%d", rand.Uint32()), home: t.TempDir(), pub: t.TempDir()}
	srv := httptest.NewServer(http.FileServer(http.Dir(e.pub)))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	decl, err := broker.Dial(ctx, e.amqpURL, broker.Options{Exchange: e.exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { decl.Close() })
	return e
}

// conf writes the sr3 configuration component/name.
func (e *sr3Env) conf(component, name string, lines ...string) {
	e.t.Helper()
	d := filepath.Join(e.home, ".config", "sr3", component)
	if err := os.MkdirAll(d, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, name+".conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// subscribeConf is the start of a subscribe configuration that mirrors
// everything on the exchange into dir.
func (e *sr3Env) subscribeConf(dir string) []string {
	return []string{"broker " + e.amqpURL, "exchange " + e.exchange, "topicPrefix v03", "subtopic #",
		"directory " + dir, "mirror on", "logLevel info"}
}

// publish writes data as rel in the published tree.
func (e *sr3Env) publish(rel string, data []byte) string {
	e.t.Helper()
	p := filepath.Join(e.pub, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// start runs "sr3 foreground component/name", waits until it has bound its
// queue, and stops it (its process group) when the test ends. The returned
// buffer has its output.
func (e *sr3Env) start(component, name string) *syncBuffer {
	e.t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(filepath.Join(e.bin, "sr3"), "foreground", component+"/"+name)
	cmd.Env = append(os.Environ(), "HOME="+e.home)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	e.wait(log, "sr3 to bind its queue", func() bool { return strings.Contains(strings.ToLower(log.String()), "binding") })
	return log
}

// declare runs "sr3 declare component/name": the queue and its bindings
// exist, so messages published from now on wait there for the flow.
func (e *sr3Env) declare(component, name string) {
	e.t.Helper()
	cmd := exec.CommandContext(e.ctx, filepath.Join(e.bin, "sr3"), "declare", component+"/"+name)
	cmd.Env = append(os.Environ(), "HOME="+e.home)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("sr3 declare: %v\n%s", err, out)
	}
}

// post runs "sr3_post -c name path".
func (e *sr3Env) post(name, path string) {
	e.t.Helper()
	pc := exec.CommandContext(e.ctx, filepath.Join(e.bin, "sr3_post"), "-c", name, path)
	pc.Env = append(os.Environ(), "HOME="+e.home)
	if out, err := pc.CombinedOutput(); err != nil {
		e.t.Fatalf("sr3_post: %v\n%s", err, out)
	}
}

// wait polls cond until it holds, failing the test with sr3's output when
// the test's context ends first.
func (e *sr3Env) wait(log *syncBuffer, what string, cond func() bool) {
	e.t.Helper()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("timed out waiting for %s\nsr3 output:\n%s", what, log.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestSR3SubscribePartitions records what a real "sr3 subscribe" without
// its block_reassembly plugin does with sr3_post's partitioned messages: it
// fetches each partition with an HTTP range request into a file of its own,
// named "file.bin§block_NNNN,2.0kib_§" (number, partition size as sr3's
// naturalSize), and does not reassemble file.bin.
// TestSR3Reassembly runs the plugin.
func TestSR3SubscribePartitions(t *testing.T) {
	t.Parallel() // its own exchanges and HOME: runs beside the other sr3 tests
	ctx := brokertest.Context(t, 3*time.Minute)
	e := newSR3Env(t, ctx)
	data, err := os.ReadFile("testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	sub := t.TempDir()
	path := e.publish("a/b/file.bin", data)
	e.conf("subscribe", "s", append(e.subscribeConf(sub), "accept .*")...)
	e.conf("post", "p", "post_broker "+e.amqpURL, "post_exchange "+e.exchange, "post_baseUrl "+e.url,
		"post_baseDir "+e.pub, "blockSize 2048")
	log := e.start("subscribe", "s")
	e.post("p", path)
	for i := 0; i*2048 < len(data); i++ {
		name := filepath.Join(sub, "a/b", fmt.Sprintf("file.bin§block_%04d,2.0kib_§", i))
		want := data[i*2048 : min(len(data), (i+1)*2048)]
		e.wait(log, name, func() bool {
			got, err := os.ReadFile(name)
			return err == nil && bytes.Equal(got, want)
		})
	}
	if _, err := os.Stat(filepath.Join(sub, "a/b/file.bin")); err == nil {
		t.Errorf("sr3 subscribe reassembled file.bin without block_reassembly")
	}
}
