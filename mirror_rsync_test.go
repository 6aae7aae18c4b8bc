package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// The peer Mirror is measured against: rsync -a --delete from an rsync
// daemon on loopback, started by the test with a temporary configuration.

// rsyncDaemon serves root as the module "tree" from an rsync daemon on a
// free loopback port and returns its URL; the daemon stops with the test.
func rsyncDaemon(t testing.TB, root string) string {
	t.Helper()
	bin := testtool.Look(t, "rsync", "rsync")
	conf := filepath.Join(t.TempDir(), "rsyncd.conf")
	text := fmt.Sprintf("use chroot = no\nuid = %d\ngid = %d\npid file = %s\n[tree]\npath = %s\nread only = yes\nexclude = /.zsyncpipe/\n",
		os.Getuid(), os.Getgid(), conf+".pid", root)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 { // the free port may be taken before rsync binds it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(bin, "--daemon", "--no-detach", "--config="+conf, "--address=127.0.0.1", "--port="+strconv.Itoa(port))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
				return "rsync://" + addr + "/tree/"
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		lastErr = fmt.Errorf("rsync daemon on port %d did not start: %s", port, out.String())
	}
	t.Fatal(lastErr)
	return ""
}

var rsyncReceived = regexp.MustCompile(`Total bytes received: ([0-9,.]+)`)

// rsyncMirror runs rsync -a --delete from url into dst and returns the
// bytes it received and its wall time.
func rsyncMirror(t testing.TB, url, dst string) (int64, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, testtool.Look(t, "rsync", "rsync"), "-a", "--delete", "--stats", url, dst+"/")
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	m := rsyncReceived.FindSubmatch(out)
	if m == nil {
		t.Fatalf("rsync printed no received bytes:\n%s", out)
	}
	n, err := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(string(m[1])), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n, wall
}

// copyTree copies src to dst with modes, mtimes and links (cp -a).
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
}

// rsyncAndMirror copies old twice (cp -a), makes one copy match pub with
// rsync -a --delete from a daemon and the other with Mirror (Delete) from
// a web server, checks the mirror's result, logs both, and returns rsync's
// bytes received, the mirror's summary and the options it ran with.
func rsyncAndMirror(t *testing.T, old, pub string) (int64, *MirrorSummary, MirrorOptions) {
	t.Helper()
	tmp := t.TempDir()
	dstR, dstM := filepath.Join(tmp, "r"), filepath.Join(tmp, "m")
	for _, d := range []string{dstR, dstM} {
		os.Mkdir(d, 0o755)
		copyTree(t, old, d)
	}
	received, rwall := rsyncMirror(t, rsyncDaemon(t, pub), dstR)
	url, _ := serveTree(t, pub)
	o := mirrorOpts(url, dstM)
	o.Delete = true
	start := time.Now()
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	mwall := time.Since(start)
	compareTrees(t, pub, dstM, false)
	t.Logf("rsync: %d bytes received in %v; mirror: %d bytes received (%d of file data) in %d requests, %v; %d files from packs, %d patched",
		received, rwall, sum.Downloaded, sum.Fetched, sum.Requests, mwall, sum.Packed, sum.Patched)
	return received, sum, o
}

func TestMirrorDownloadsNoMoreThanRsync(t *testing.T) {
	tmp := t.TempDir()
	old, pub := filepath.Join(tmp, "old"), filepath.Join(tmp, "pub")
	oldFiles, newFiles := trees()
	// Scale the pair up with a tree of small files, a third changed.
	for rel, data := range smallTree(300, 0) {
		oldFiles["s/"+rel] = data
	}
	for rel, data := range smallTree(300, 1) {
		newFiles["s/"+rel] = data
	}
	makeTree(t, old, oldFiles, map[string]string{"lib/link": "big.dat"})
	makeTree(t, pub, newFiles, map[string]string{"lib/link": "moved/big.dat"})
	publishTree(t, pub, 1)
	received, sum, o := rsyncAndMirror(t, old, pub)
	if sum.Downloaded > received {
		t.Errorf("mirror received %d bytes, rsync %d", sum.Downloaded, received)
	}

	// The same tree published with packs (small files compressed, many
	// per request), from the same old tree.
	packTree(t, pub, nil)
	dstP := filepath.Join(tmp, "p")
	os.Mkdir(dstP, 0o755)
	copyTree(t, old, dstP)
	o.Dir = dstP
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dstP, false)
	t.Logf("with packs: %d bytes received (%d of file data) in %d requests, %d files from packs", sum.Downloaded, sum.Fetched, sum.Requests, sum.Packed)
	if sum.Downloaded > received || sum.Packed == 0 || sum.PackFallbacks != 0 {
		t.Errorf("with packs: mirror received %d bytes, rsync %d; %d files from packs, %d by path", sum.Downloaded, received, sum.Packed, sum.PackFallbacks)
	}
}

// TestMirrorPatchesDownloadNoMoreThanRsync: small files (2 to 14 KiB)
// whose content does not compress and whose old versions differ only in a
// header (gzip data compressed again: botocore's shape, docs/trees.md)
// cost rsync about a block each; patched from their old versions with
// block sums, they cost the mirror no more. (Files of 30 to 60 KiB with
// one changed spot cost about as much as rsync's: their sums are 1-2 %
// of their size, where rsync sends its checksums the other way.)
func TestMirrorPatchesDownloadNoMoreThanRsync(t *testing.T) {
	tmp := t.TempDir()
	old, pub := filepath.Join(tmp, "old"), filepath.Join(tmp, "pub")
	patchTrees(t, old, pub, 200, nil)
	received, sum, _ := rsyncAndMirror(t, old, pub)
	if sum.Downloaded > received || sum.Patched != 201 {
		t.Errorf("mirror received %d bytes, rsync %d; %d files patched, want 201", sum.Downloaded, received, sum.Patched)
	}
}
