package v03_test

import (
	"bytes"
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

// TestSR3SubscribePartitions records what a real "sr3 subscribe" (without
// its block_reassembly plugin, which needs the flufl.lock module) does with
// sr3_post's partitioned messages: it fetches each partition with an HTTP
// range request into a file of its own, named
// "file.bin§block_NNNN,2.0kib_§" (number, partition size as sr3's
// naturalSize), and does not reassemble file.bin.
func TestSR3SubscribePartitions(t *testing.T) {
	post := sr3Post(t)
	sr3 := filepath.Join(filepath.Dir(post), "sr3")
	amqpURL := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	data, err := os.ReadFile("testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	pub, sub, home := t.TempDir(), t.TempDir(), t.TempDir()
	conf := func(component, name string, lines ...string) {
		d := filepath.Join(home, ".config", "sr3", component)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name+".conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(pub, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pub, "a/b/file.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(pub)))
	defer srv.Close()
	exchange := fmt.Sprintf("xv03sub_%d", rand.Uint32())
	// Declares the exchange: sr3 subscribers do not.
	decl, err := broker.Dial(ctx, amqpURL, broker.Options{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer decl.Close()
	conf("subscribe", "s", "broker "+amqpURL, "exchange "+exchange, "topicPrefix v03", "subtopic #",
		"directory "+sub, "mirror on", "logLevel info", "accept .*")
	conf("post", "p", "post_broker "+amqpURL, "post_exchange "+exchange, "post_baseUrl "+srv.URL,
		"post_baseDir "+pub, "blockSize 2048")
	env := append(os.Environ(), "HOME="+home)

	var log syncBuffer
	cmd := exec.Command(sr3, "foreground", "subscribe/s")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s\nsr3 output:\n%s", what, log.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	wait("sr3 to bind its queue", func() bool { return strings.Contains(strings.ToLower(log.String()), "binding") })

	pc := exec.CommandContext(ctx, post, "-c", "p", filepath.Join(pub, "a/b/file.bin"))
	pc.Env = env
	if out, err := pc.CombinedOutput(); err != nil {
		t.Fatalf("sr3_post: %v\n%s", err, out)
	}
	for i := 0; i*2048 < len(data); i++ {
		name := filepath.Join(sub, "a/b", fmt.Sprintf("file.bin§block_%04d,2.0kib_§", i))
		want := data[i*2048 : min(len(data), (i+1)*2048)]
		wait(name, func() bool {
			got, err := os.ReadFile(name)
			return err == nil && bytes.Equal(got, want)
		})
	}
	if _, err := os.Stat(filepath.Join(sub, "a/b/file.bin")); err == nil {
		t.Errorf("sr3 subscribe reassembled file.bin without block_reassembly")
	}
}
