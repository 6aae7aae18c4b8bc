// Package nginxtest starts Debian's nginx for tests: on a free loopback
// port, serving a directory, with every file it writes under a temporary
// directory of the test.
package nginxtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// Server is an nginx started by a test.
type Server struct {
	// Base is "http://127.0.0.1:port".
	Base string
	// AccessLog is the path of the access log, whose lines are
	// '$status $body_bytes_sent "$http_range" "$request" $bytes_sent'.
	AccessLog string
}

// Start starts nginx on a free loopback port serving root, with every
// file it writes under a temporary directory, and stops it when the test
// ends.
func Start(t testing.TB, root string) *Server {
	t.Helper()
	bin := testtool.Look(t, "nginx", "nginx-light")
	var lastErr error
	for range 3 { // the free port may be taken before nginx binds it
		s, err := try(t, bin, root)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("nginx: %v", lastErr)
	return nil
}

func try(t testing.TB, bin, root string) (*Server, error) {
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
	s := &Server{Base: "http://" + addr, AccessLog: filepath.Join(dir, "access.log")}
	conf := fmt.Sprintf(`
%[1]s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log notice;
events { worker_connections 64; }
http {
	log_format ranges '$status $body_bytes_sent "$http_range" "$request" $bytes_sent';
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
		resp, err := http.Get(s.Base + "/")
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

// AccessLines returns the lines of the access log for requests whose
// request line contains path.
func (s *Server) AccessLines(t testing.TB, path string) []string {
	t.Helper()
	fh, err := os.Open(s.AccessLog)
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

// BytesSent sums what nginx sent for the given lines of its access log
// (AccessLines), headers and bodies: its $bytes_sent, the last field.
func BytesSent(t testing.TB, lines []string) int64 {
	t.Helper()
	var n int64
	for _, l := range lines {
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseInt(l[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("access log line %q: no $bytes_sent at its end", l)
		}
		n += v
	}
	return n
}
