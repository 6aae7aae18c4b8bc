package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A huge local control file is refused after its first bytes: it is parsed
// as a stream, not read whole.
func TestHugeLocalControlFile(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "huge.zsync")
	fh, err := os.Create(ctl)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 2 GiB of zeros that take no disk space.
	if err := fh.Truncate(2 << 30); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	fh.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := runZ(t, "sync", "-o", filepath.Join(dir, "out"), ctl)
	runtime.ReadMemStats(&after)
	if r.code != exitBadControl || !strings.Contains(r.stderr, "line longer than") {
		t.Fatalf("exit %d, stderr %q; want %d and the first line refused", r.code, r.stderr, exitBadControl)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("refusing a 2 GiB control file allocated %d bytes", n)
	}
}

// authServer serves dir with Basic authentication (user "u", password
// "p") and records the Authorization header of every request.
func authServer(t *testing.T, dir string) (*httptest.Server, *[]string, *sync.Mutex) {
	var mu sync.Mutex
	var auths []string
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &auths, &mu
}

// Credentials in the control file's URL are sent with the data requests to
// the same host, and never to another host.
func TestURLCredentialsSameHostOnly(t *testing.T) {
	f := newFixture(t, 1<<20)
	srv, _, _ := authServer(t, filepath.Dir(f.target))
	u := strings.Replace(srv.URL, "http://", "http://u:p@", 1) + "/data.bin.zsync"
	out := filepath.Join(f.dir, "out.bin")
	r := runZ(t, "sync", "--retries", "0", "-i", f.old, "-o", out, u)
	if r.code != 0 {
		t.Fatalf("same host: exit %d: %s", r.code, r.stderr)
	}
	sameBytes(t, "output", readFile(t, out), f.newData)

	// The data on another host (another port): no credentials go there.
	other, otherAuths, mu := authServer(t, filepath.Dir(f.target))
	ctl := filepath.Join(filepath.Dir(f.target), "other.zsync")
	mustRun(t, "make", "-q", "-u", other.URL+"/data.bin", "-o", ctl, f.target)
	out2 := filepath.Join(f.dir, "out2.bin")
	r = runZ(t, "sync", "--retries", "0", "-i", f.old, "-o", out2, strings.Replace(srv.URL, "http://", "http://u:p@", 1)+"/other.zsync")
	if r.code != exitUsage || !strings.Contains(r.stderr, "401") {
		t.Errorf("other host: exit %d, stderr %q; want %d and 401", r.code, r.stderr, exitUsage)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*otherAuths) == 0 {
		t.Fatal("the other host got no request")
	}
	for _, a := range *otherAuths {
		if a != "" {
			t.Errorf("the other host got credentials %q", a)
		}
	}
}

// Ctrl-C (the context cancelled by main's signal handler) exits with 130
// and says how to resume.
func TestInterruptExitCode(t *testing.T) {
	f := newFixture(t, 1<<20)
	files := http.FileServer(http.Dir(filepath.Dir(f.target)))
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			<-release // stall every range request
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	out := filepath.Join(f.dir, "out.bin")
	code := run(ctx, []string{"sync", "-i", f.old, "-o", out, srv.URL + "/data.bin.zsync"}, &stdout, &stderr)
	if code != exitInterrupted || !strings.Contains(stderr.String(), "interrupted; run the same command again to resume (") {
		t.Fatalf("exit %d, stderr %q; want %d and a resume hint", code, stderr.String(), exitInterrupted)
	}
	if _, err := os.Stat(out + ".part.state"); err != nil {
		t.Errorf("no resume state kept: %v", err)
	}
}

// Small slips of the messages: help for an unknown command points at the
// command list, and "not a regular file" is not followed by "invalid
// options".
func TestMessageSlips(t *testing.T) {
	r := runZ(t, "help", "nosuch")
	if r.code != exitUsage || strings.Contains(r.stderr, "help -h") || !strings.Contains(r.stderr, "Run 'zsyncpipe help' for the list of commands.") {
		t.Errorf("help nosuch: exit %d, stderr %q", r.code, r.stderr)
	}
	f := newFixture(t, 64<<10)
	r = runZ(t, "sync", "-i", f.dir, "-o", filepath.Join(f.dir, "out"), f.control)
	if r.code != exitUsage || !strings.Contains(r.stderr, "not a regular file") || strings.Contains(r.stderr, "invalid options") {
		t.Errorf("directory seed: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestSIGINT sends a real SIGINT to zsyncpipe running in a child process
// (this test binary, re-run as the command by TestMainChild) while it waits
// on a stalled server: it exits with 130 and says how to resume.
func TestSIGINT(t *testing.T) {
	f := newFixture(t, 1<<20)
	files := http.FileServer(http.Dir(filepath.Dir(f.target)))
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			select { // stall every range request
			case <-release:
			case <-r.Context().Done():
			}
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	out := filepath.Join(f.dir, "out.bin")
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainChild$")
	cmd.Env = append(os.Environ(), "ZSYNCPIPE_MAIN_CHILD=sync\n-i\n"+f.old+"\n-o\n"+out+"\n"+srv.URL+"/data.bin.zsync")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the sync is under way: its state file exists.
	for i := 0; ; i++ {
		if _, err := os.Stat(out + ".part.state"); err == nil {
			break
		}
		if i == 500 {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the child never started its sync: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted || !strings.Contains(stderr.String(), "run the same command again to resume") {
		t.Fatalf("child: %v, stderr %q; want exit %d and a resume hint", err, stderr.String(), exitInterrupted)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an interrupted sync created its output")
	}
}

// TestMainChild runs main() with the arguments of ZSYNCPIPE_MAIN_CHILD
// (one per line), as the child process of TestSIGINT.
func TestMainChild(t *testing.T) {
	args := os.Getenv("ZSYNCPIPE_MAIN_CHILD")
	if args == "" {
		t.Skip("only run as the child of TestSIGINT")
	}
	os.Args = append([]string{"zsyncpipe"}, strings.Split(args, "\n")...)
	main() // exits
}
