package zsyncpipe

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// Interoperability with real software: Debian's nginx-light serving the
// files, zsyncmake making control files, and the zsync 0.6.2 client reading
// ours. CI installs them (apt-get install nginx-light zsync); elsewhere the
// tests are skipped when they are missing.

// nginxLook returns the path of a program the tests need, as
// testtool.Look.
func nginxLook(t testing.TB, name, pkg string) string {
	t.Helper()
	return testtool.Look(t, name, pkg)
}

// nginxServer is an nginx started by a test.
type nginxServer struct {
	base      string // "http://127.0.0.1:port"
	accessLog string
}

// nginxStart starts nginx on a free loopback port serving root, with every
// file it writes under a temporary directory, and stops it when the test
// ends.
func nginxStart(t testing.TB, root string) *nginxServer {
	t.Helper()
	bin := nginxLook(t, "nginx", "nginx-light")
	var lastErr error
	for range 3 { // the free port may be taken before nginx binds it
		s, err := nginxTry(t, bin, root)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("nginx: %v", lastErr)
	return nil
}

func nginxTry(t testing.TB, bin, root string) (*nginxServer, error) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read files in private temp dirs
	}
	s := &nginxServer{base: "http://" + addr, accessLog: filepath.Join(dir, "access.log")}
	conf := fmt.Sprintf(`
%[1]s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log notice;
events { worker_connections 64; }
http {
	log_format ranges '$status $body_bytes_sent "$http_range" "$request"';
	access_log %[2]s/access.log ranges;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	types { application/octet-stream bin zsync; }
	default_type application/octet-stream;
	sendfile on;
	server {
		listen %[3]s;
		root %[4]s;
	}
}
`, user, dir, addr, root)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM) // fast shutdown of master and worker
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	// Wait until it answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			logData, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("exited (%v): %s%s", err, stderr.String(), logData)
		default:
		}
		resp, err := http.Get(s.base + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("does not answer on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(stop)
	return s, nil
}

// accessLines returns the lines of the access log for requests whose
// request line contains path.
func (s *nginxServer) accessLines(t *testing.T, path string) []string {
	t.Helper()
	fh, err := os.Open(s.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var lines []string
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), " "+path+" ") {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

// nginxPair writes an 8 MiB old version and a new one derived from it into
// a directory nginx can serve, and returns the directory and the contents.
func nginxPair(t *testing.T) (root string, old, target []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, 8))
	old = make([]byte, 8<<20)
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	target = mutate(rng, old, 2048, 40)
	root = t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "new.bin"), target, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, old, target
}

// nginxSync syncs the control file at url (downloaded from nginx, as the
// command does) with old as the existing output, and checks the result.
func nginxSync(t *testing.T, url string, old, target []byte) *Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dl, err := httpsource.Download(ctx, url, httpsource.Options{}, time.Time{})
	if err != nil {
		t.Fatalf("download %s: %v", url, err)
	}
	f, err := control.Read(bytes.NewReader(dl.Body))
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "new.bin")
	if err := os.WriteFile(out, old, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := Sync(ctx, SyncOptions{Control: f, Output: out, BaseURL: dl.FinalURL.String()})
	if err != nil {
		t.Fatalf("sync from %s: %v", url, err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, "new.bin")
	t.Logf("%s: reused %d, fetched %d bytes in %d requests for %d ranges, overhead %d, %v",
		url, sum.Reused, sum.Fetched, sum.Requests, sum.Ranges, sum.Overhead, sum.Duration.Round(time.Millisecond))
	if sum.Requests == 0 || sum.Fetched == 0 || sum.Reused+sum.Fetched != int64(len(target)) {
		t.Errorf("reused %d + fetched %d in %d requests: want some fetched, summing to %d", sum.Reused, sum.Fetched, sum.Requests, len(target))
	}
	// Most of the target is in the old version.
	if sum.Fetched > int64(len(target))/4 {
		t.Errorf("fetched %d of %d bytes", sum.Fetched, len(target))
	}
	return sum
}

func TestNginxSync(t *testing.T) {
	root, old, target := nginxPair(t)
	srv := nginxStart(t, root)
	ctx := context.Background()

	// (a) A control file made by zsyncmake, with an absolute URL.
	t.Run("zsyncmake", func(t *testing.T) {
		zm := nginxLook(t, "zsyncmake", "zsync")
		cmd := exec.Command(zm, "-u", srv.base+"/new.bin", "-o", "zm.zsync", "new.bin")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zsyncmake: %v\n%s", err, out)
		}
		before := len(srv.accessLines(t, "/new.bin"))
		sum := nginxSync(t, srv.base+"/zm.zsync", old, target)
		// nginx logs a request after its last byte is sent: give it a
		// moment.
		var n int64
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n = int64(len(srv.accessLines(t, "/new.bin")) - before)
			if n >= sum.Requests || time.Now().After(deadline) {
				break
			}
		}
		if n != sum.Requests {
			t.Errorf("nginx logged %d requests for new.bin, the summary %d", n, sum.Requests)
		}
	})

	// (b) Control files made by Make, in both formats, with the relative
	// URL resolved against the control file's URL.
	for _, legacy := range []bool{false, true} {
		name := map[bool]string{false: "spec-0.8", true: "legacy"}[legacy]
		t.Run("make-"+name, func(t *testing.T) {
			f, err := MakeFile(ctx, filepath.Join(root, "new.bin"), MakeOptions{Legacy: legacy})
			if err != nil {
				t.Fatal(err)
			}
			nginxWriteControl(t, filepath.Join(root, "new."+name+".zsync"), f)
			nginxSync(t, srv.base+"/new."+name+".zsync", old, target)
		})
	}

	// (c) The zsync 0.6.2 client against a legacy control file made by
	// Make, from a seed that holds most of the target.
	t.Run("zsync-client", func(t *testing.T) {
		zsync := nginxLook(t, "zsync", "zsync")
		f, err := MakeFile(ctx, filepath.Join(root, "new.bin"), MakeOptions{Legacy: true})
		if err != nil {
			t.Fatal(err)
		}
		nginxWriteControl(t, filepath.Join(root, "new.legacy.zsync"), f)
		cwd := t.TempDir()
		if err := os.WriteFile(filepath.Join(cwd, "old.bin"), old, 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(srv.accessLines(t, "/new.bin"))
		cctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, zsync, "-q", "-i", "old.bin", "-o", "out.bin", srv.base+"/new.legacy.zsync")
		cmd.Dir = cwd
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zsync: %v\n%s", err, out)
		}
		netCheckResult(t, filepath.Join(cwd, "out.bin"), target)
		lines := srv.accessLines(t, "/new.bin")[before:]
		ranges := 0
		for _, l := range lines {
			if !strings.HasPrefix(l, "206 ") {
				t.Errorf("zsync's request answered: %s", l)
			}
			if _, spec, ok := strings.Cut(l, `"bytes=`); ok {
				ranges += strings.Count(spec, ",") + 1
			}
		}
		t.Logf("zsync: %d requests for %d ranges", len(lines), ranges)
		if len(lines) == 0 || ranges == 0 {
			t.Errorf("zsync made %d requests for %d ranges: it fetched nothing", len(lines), ranges)
		}
	})
}

func nginxWriteControl(t *testing.T, path string, f *control.File) {
	t.Helper()
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
