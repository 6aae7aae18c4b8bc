package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/indexer"
	"github.com/zsyncpipe/zsyncpipe/internal/nginxtest"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs "zsyncpipe serve" in the test's process on a free
// loopback port and returns its base URL (with a trailing slash) and a
// function that stops it as SIGTERM does and returns its exit code.
func startServe(t testing.TB, dir string, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		code := run(ctx, append(append([]string{"serve", "--listen", "127.0.0.1:0", "--no-fsync"}, args...), dir), pw, stderr)
		pw.Close()
		done <- code
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("serve printed no URL: %v; stderr: %s", err, stderr.String())
	}
	go io.Copy(io.Discard, br)
	_, rest, _ := strings.Cut(line, " at ")
	base, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(base, "http://127.0.0.1:") && !strings.HasPrefix(base, "https://127.0.0.1:") {
		cancel()
		t.Fatalf("serve's first line: %q", line)
	}
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("serve did not stop")
			}
			if code != 0 {
				t.Logf("serve stderr: %s", stderr.String())
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return base, stop
}

// waitIndex polls the served index until cond holds for it.
func waitIndex(t *testing.T, base string, cond func(*treeindex.Index) bool) *treeindex.Index {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + treeindex.IndexPath)
		if err == nil {
			x, rerr := treeindex.ReadAll(resp.Body, treeindex.ReaderOptions{})
			resp.Body.Close()
			if resp.StatusCode == 200 && rerr == nil && cond(x) {
				return x
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the served index did not get there: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeTree: the zsync 0.6.2 client rebuilds a file of a tree that
// "serve" publishes, the index is answered with 304 when unchanged, serve
// re-indexes a changed file by itself, and stops cleanly.
func TestServeTree(t *testing.T) {
	lookTool(t, "zsync")
	_, srv, old, newData := interopFiles(t, 21)
	writeFile(t, filepath.Join(srv, "sub dir", "target.bin"), newData)
	os.Remove(filepath.Join(srv, "target.bin"))
	writeFile(t, filepath.Join(srv, "small.txt"), []byte("small"))
	base, stop := startServe(t, srv, "--legacy", "--settle", "100ms")
	waitIndex(t, base, func(x *treeindex.Index) bool { _, ok := x.Lookup("sub dir/target.bin"); return ok })

	work := t.TempDir()
	tool(t, work, "zsync", "-q", "-i", old, "-o", "out.bin", base+".zsyncpipe/sub%20dir/target.bin.zsync")
	sameBytes(t, "zsync output", readFile(t, filepath.Join(work, "out.bin")), newData)

	// A pass that started before the files settled may still rewrite the
	// index once (a busy machine delays it past waitIndex): an answer of
	// 200 counts only if the ETag stayed the same.
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(base + treeindex.IndexPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		req, _ := http.NewRequest(http.MethodGet, base+treeindex.IndexPath, nil)
		req.Header.Set("If-None-Match", etag)
		resp2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode == http.StatusNotModified {
			break
		}
		if resp2.Header.Get("ETag") == etag || time.Now().After(deadline) {
			t.Fatalf("unchanged index: %d (ETag %s, asked with %s), want 304", resp2.StatusCode, resp2.Header.Get("ETag"), etag)
		}
		time.Sleep(100 * time.Millisecond)
	}

	writeFile(t, filepath.Join(srv, "small.txt"), []byte("changed"))
	waitIndex(t, base, func(x *treeindex.Index) bool {
		e, ok := x.Lookup("small.txt")
		return ok && string(e.Data) == "changed"
	})
	if code := stop(); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}
}

// TestNginxTree: the zsync 0.6.2 client rebuilds a file of a tree indexed
// with --legacy and served by nginx, .zsyncpipe included.
func TestNginxTree(t *testing.T) {
	lookTool(t, "zsync")
	_, srv, old, newData := interopFiles(t, 22)
	writeFile(t, filepath.Join(srv, "a", "b", "target.bin"), newData)
	out := mustRun(t, "index", "--legacy", "--no-fsync", srv)
	if !strings.Contains(out.stdout, "wrote 2 control files") {
		t.Fatalf("index: %s", out.stdout)
	}
	ng := nginxtest.Start(t, srv)
	work := t.TempDir()
	tool(t, work, "zsync", "-q", "-i", old, "-o", "out.bin", ng.Base+"/.zsyncpipe/a/b/target.bin.zsync")
	sameBytes(t, "zsync output", readFile(t, filepath.Join(work, "out.bin")), newData)
	resp, err := http.Get(ng.Base + "/" + treeindex.IndexPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	x, err := treeindex.ReadAll(resp.Body, treeindex.ReaderOptions{})
	if err != nil || !x.Header.Legacy || len(x.Entries) != 4 {
		t.Fatalf("index from nginx: %v %+v", err, x)
	}
}

// TestIndexCommand: exit codes and messages of "zsyncpipe index".
func TestIndexCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok"), []byte("x"))                        // inline
	writeFile(t, filepath.Join(dir, "small"), bytes.Repeat([]byte("s"), 4000)) // packed
	big := make([]byte, 300000)
	rand.Read(big)                               // above indexer.DefaultPackMax: not packed whole
	writeFile(t, filepath.Join(dir, "big"), big) // a control file, packed
	out := mustRun(t, "index", "-v", dir)
	if !strings.Contains(out.stdout, "created ok") || !strings.Contains(out.stdout, "generation 1") ||
		!strings.Contains(out.stdout, "wrote 1 control files") || !strings.Contains(out.stdout, "packed 1 files and 1 control files") {
		t.Errorf("first run: %s", out.stdout)
	}
	out = mustRun(t, "index", dir)
	if !strings.Contains(out.stdout, "read 0 files") || !strings.Contains(out.stdout, "unchanged") || strings.Contains(out.stdout, "packed") {
		t.Errorf("second run: %s", out.stdout)
	}
	writeFile(t, filepath.Join(dir, "bad\x01name"), []byte("x"))
	r := runZ(t, "index", dir)
	if r.code != exitUsage || !strings.Contains(r.stderr, `bad\x01name`) || !strings.Contains(r.stderr, indexer.ErrName.Error()) {
		t.Errorf("bad name: exit %d, %s", r.code, r.stderr)
	}
	if r := runZ(t, "index", filepath.Join(dir, "ok")); r.code != exitUsage {
		t.Errorf("not a directory: exit %d", r.code)
	}
	if r := runZ(t, "serve", "--tls-cert", "x", dir); r.code != exitUsage {
		t.Errorf("--tls-cert alone: exit %d", r.code)
	}
	if r := runZ(t, "serve", "--tls-cert", "nothing.pem", "--tls-key", "nothing.pem", dir); r.code != exitIO || r.stdout != "" {
		t.Errorf("missing certificate: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestServeTLS: serve answers HTTPS with the given certificate.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), []byte("over TLS"))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(t.TempDir(), "cert.pem"), filepath.Join(t.TempDir(), "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	base, stop := startServe(t, dir, "--tls-cert", certFile, "--tls-key", keyFile, "--no-index")
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("URL %s", base)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(base + "f")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "over TLS" {
		t.Fatalf("body %q", b)
	}
	client.CloseIdleConnections()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
