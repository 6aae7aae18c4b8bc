//go:build unix

package announce

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// The interoperability tests run the real Sarracenia (metpx-sr3, which
// .ci/run installs in a virtual environment at /opt/sr3venv) against a real
// RabbitMQ: sr3 receives zsyncpipe's announcements, and zsyncpipe receives
// sr3's.

// sr3Bin returns the path of a program of sr3 ("sr3", "sr3_post").
func sr3Bin(t *testing.T, name string) string {
	t.Helper()
	if p := filepath.Join("/opt/sr3venv/bin", name); fileExists(p) {
		return p
	}
	return testtool.Look(t, name, "python3-venv (pip install metpx-sr3 amqp paho-mqtt)")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sr3Config writes an sr3 configuration file below home.
func sr3Config(t *testing.T, home, component, name string, lines ...string) {
	t.Helper()
	write(t, filepath.Join(home, ".config", "sr3", component, name+".conf"), []byte(strings.Join(lines, "\n")+"\n"))
}

// logBuffer collects a process's output, safe to read while it runs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, log *logBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nsr3 output:\n%s", what, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSR3SubscribeReceives: an "sr3 subscribe" configuration receives the
// announcements of zsyncpipe's Publisher and downloads the files; when
// announced again, sr3 finds that the local file has the announced
// checksum (it computes the sha512 itself) and skips it.
func TestSR3SubscribeReceives(t *testing.T) {
	sr3 := sr3Bin(t, "sr3")
	amqpURL := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	exchange := fmt.Sprintf("xzs_%d", rand.Uint32())
	home, sr3Dir := t.TempDir(), t.TempDir()

	pubConn, err := broker.Dial(ctx, amqpURL, broker.Options{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	f := newFixture(t, pubConn)
	big := randomBytes(7, 300000)
	write(t, filepath.Join(f.pubDir, "a/b/big.bin"), big)
	write(t, filepath.Join(f.pubDir, "a/small.txt"), []byte("small and inline\n"))

	sr3Config(t, home, "subscribe", "zs",
		"broker "+amqpURL,
		"exchange "+exchange,
		"topicPrefix v03",
		"subtopic #",
		"directory "+sr3Dir,
		"mirror on",
		"logReject on",
		"logLevel info",
		"accept .*")
	var log logBuffer
	defer startSR3(t, sr3, home, "subscribe/zs", &log)()
	waitFor(t, "sr3 to bind its queue", time.Minute, &log, func() bool {
		return strings.Contains(strings.ToLower(log.String()), "binding")
	})

	for _, rel := range []string{"a/b/big.bin", "a/small.txt"} {
		f.announce(t, ctx, rel)
	}
	for _, rel := range []string{"a/b/big.bin", "a/small.txt"} {
		want, _ := os.ReadFile(filepath.Join(f.pubDir, rel))
		waitFor(t, "sr3 to download "+rel, time.Minute, &log, func() bool {
			got, err := os.ReadFile(filepath.Join(sr3Dir, rel))
			return err == nil && bytes.Equal(got, want)
		})
	}
	// Touched and announced again: the mtime is newer, so sr3 compares our
	// identity with its own checksum of the file it has.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(f.pubDir, "a/b/big.bin"), later, later); err != nil {
		t.Fatal(err)
	}
	f.announce(t, ctx, "a/b/big.bin")
	waitFor(t, "sr3 to find the same checksum", time.Minute, &log, func() bool {
		return strings.Contains(log.String(), "same checksum")
	})
	t.Logf("sr3 subscribe downloaded zsyncpipe's announcements and agreed with their checksums")
}

// TestSubscribeToSR3Post: zsyncpipe's Subscriber receives what "sr3_post"
// announces for a file published with its control file beside it, and
// delta-syncs it.
func TestSubscribeToSR3Post(t *testing.T) {
	sr3Post := sr3Bin(t, "sr3_post")
	amqpURL := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	exchange := fmt.Sprintf("xsr3post_%d", rand.Uint32())
	home := t.TempDir()
	f := newFixture(t, nil)

	const size = 2 << 20
	old := randomBytes(8, size)
	changed := bytes.Clone(old)
	copy(changed[1000:], randomBytes(9, 5000))
	write(t, filepath.Join(f.subDir, "obs/big.bin"), old)
	write(t, filepath.Join(f.pubDir, "obs/big.bin"), changed)
	// "Published with its control file": big.bin.zsync beside it.
	cf, err := zsyncpipe.MakeFile(ctx, filepath.Join(f.pubDir, "obs/big.bin"), zsyncpipe.MakeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, cf); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.pubDir, "obs/big.bin.zsync"), buf.Bytes())

	opts := broker.Options{Exchange: exchange, Queue: broker.QueueName("guest", "subscribe", "sr3post", fmt.Sprint(rand.Uint32()))}
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
		"post_baseDir "+f.pubDir)
	cmd := exec.CommandContext(ctx, sr3Post, "-c", "p", filepath.Join(f.pubDir, "obs/big.bin"))
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sr3_post: %v\n%s", err, out)
	}
	r := f.next(t, ctx)
	if r.Action != Synced {
		t.Fatalf("%+v\nsr3_post output:\n%s", r, out)
	}
	f.same(t, "obs/big.bin")
	if r.Fetched > size/20 {
		t.Errorf("fetched %d bytes of %d", r.Fetched, size)
	}
	t.Logf("sr3_post announcement delta-synced: fetched %d of %d bytes, reused %d", r.Fetched, size, r.Reused)
}

// TestSubscribeToSR3Watch: zsyncpipe's Subscriber mirrors what "sr3 watch"
// announces as files are created, renamed (sr3 writes the old name as the
// poster's absolute path) and removed.
func TestSubscribeToSR3Watch(t *testing.T) {
	sr3 := sr3Bin(t, "sr3")
	amqpURL := brokertest.AMQP(t)
	ctx := brokertest.Context(t, 3*time.Minute)
	exchange := fmt.Sprintf("xsr3watch_%d", rand.Uint32())
	home := t.TempDir()
	f := newFixture(t, nil)
	write(t, filepath.Join(f.pubDir, "d/.keep"), nil)

	opts := broker.Options{Exchange: exchange, Queue: broker.QueueName("guest", "subscribe", "sr3watch", fmt.Sprint(rand.Uint32()))}
	conn, err := broker.Dial(ctx, amqpURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in, err := conn.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go f.sub.Serve(ctx, in)

	sr3Config(t, home, "watch", "w",
		"post_broker "+amqpURL,
		"post_exchange "+exchange,
		"post_baseUrl "+f.srv.URL+"/",
		"post_baseDir "+f.pubDir,
		"path "+f.pubDir,
		"fileEvents create,modify,delete,link,mkdir,rmdir")
	var log logBuffer
	defer startSR3(t, sr3, home, "watch/w", &log)()
	waitFor(t, "sr3 watch to start", time.Minute, &log, func() bool {
		return strings.Contains(log.String(), "now active")
	})
	expect := func(path string, want Action) {
		t.Helper()
		for {
			select {
			case r := <-f.results:
				if r.Path != path {
					continue // the .keep file, directories
				}
				if r.Action != want {
					t.Fatalf("%s: %+v, want %s\nsr3 output:\n%s", path, r, want, log.String())
				}
				return
			case <-ctx.Done():
				t.Fatalf("no announcement of %s\nsr3 output:\n%s", path, log.String())
			}
		}
	}
	data := randomBytes(30, 10000)
	write(t, filepath.Join(f.pubDir, "d/f1"), data)
	expect("d/f1", Downloaded)
	f.same(t, "d/f1")

	// sr3 watch batches events every few seconds; let the rename be a
	// batch of its own.
	time.Sleep(6 * time.Second)
	if err := os.Rename(filepath.Join(f.pubDir, "d/f1"), filepath.Join(f.pubDir, "d/f2")); err != nil {
		t.Fatal(err)
	}
	expect("d/f2", Renamed)
	f.same(t, "d/f2")
	if _, err := os.Stat(filepath.Join(f.subDir, "d/f1")); !os.IsNotExist(err) {
		t.Errorf("d/f1 still there after sr3's rename: %v", err)
	}

	time.Sleep(6 * time.Second)
	if err := os.Remove(filepath.Join(f.pubDir, "d/f2")); err != nil {
		t.Fatal(err)
	}
	expect("d/f2", Removed)
	if _, err := os.Stat(filepath.Join(f.subDir, "d/f2")); !os.IsNotExist(err) {
		t.Errorf("d/f2 not removed: %v", err)
	}
}

// startSR3 runs "sr3 foreground CONFIG" (component/name) with HOME set to
// home, its output into log, in a process group of its own; the returned
// function stops it (SIGTERM to the group, SIGKILL after 20 s) and waits.
func startSR3(t *testing.T, sr3, home, config string, log *logBuffer) (stop func()) {
	t.Helper()
	cmd := exec.Command(sr3, "foreground", config)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}
