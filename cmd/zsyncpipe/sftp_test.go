package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

// TestSyncSFTP syncs with the control file and the blocks read over SFTP
// from a real sshd: the control file's relative URL resolves against its
// sftp:// URL, -k keeps a copy that the next run reuses, and refused host
// keys, refused logins and missing files fail with exit code 3 and a clear
// message.
func TestSyncSFTP(t *testing.T) {
	srv := sshtest.Start(t)
	f := newFixture(t, 2<<20)
	for _, name := range []string{"data.bin", "data.bin.zsync"} {
		writeFile(t, filepath.Join(srv.Root, name), readFile(t, filepath.Join(f.dir, "srv", name)))
	}
	auth := []string{"--identity", srv.IdentityFile, "--known-hosts", srv.KnownHosts}
	ctl := srv.URL("data.bin.zsync")
	out := filepath.Join(f.dir, "out.bin")
	keep := filepath.Join(f.dir, "kept.zsync")

	r := mustRun(t, append([]string{"sync", "-i", f.old, "-o", out, "-k", keep}, append(auth, ctl)...)...)
	sameBytes(t, "output", readFile(t, out), f.newData)
	sameBytes(t, "kept control file", readFile(t, keep), readFile(t, f.control))
	if !strings.Contains(r.stdout, "fetched in") {
		t.Errorf("summary %q shows no ranges fetched over sftp", r.stdout)
	}
	// Again, from the kept copy (the remote one is no newer): up to date.
	os.Remove(out)
	mustRun(t, append([]string{"sync", "-q", "-i", f.old, "-o", out, "-k", keep}, append(auth, ctl)...)...)
	sameBytes(t, "output of the second run", readFile(t, out), f.newData)

	dir := t.TempDir()
	empty := filepath.Join(dir, "known_hosts")
	writeFile(t, empty, nil)
	wrongKey := filepath.Join(dir, "id_wrong")
	sshtest.WriteKey(t, wrongKey)
	fp := ssh.FingerprintSHA256(srv.HostKey)
	for _, c := range []struct {
		name string
		args []string
		says []string
	}{
		{"unknown host key", []string{"--identity", srv.IdentityFile, "--known-hosts", empty, ctl}, []string{fp, "unknown"}},
		{"wrong key", []string{"--identity", wrongKey, "--known-hosts", srv.KnownHosts, ctl}, []string{"authentication failed"}},
		{"missing file", append(auth, srv.URL("nope.zsync")), []string{"file does not exist"}},
		{"missing blocks file", append(auth, "--url", srv.URL("nope.bin"), "-u", srv.URL("nope")+"/", f.control), []string{"file does not exist"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := filepath.Join(dir, "x")
			res := runZ(t, append([]string{"sync", "--retries", "0", "-o", o}, c.args...)...)
			if res.code != exitUsage {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", res.code, exitUsage, res.stdout, res.stderr)
			}
			for _, s := range c.says {
				if !strings.Contains(res.stderr, s) {
					t.Errorf("stderr %q lacks %q", res.stderr, s)
				}
			}
			if _, err := os.Stat(o); err == nil {
				t.Error("a failed sync created its output")
			}
		})
	}
}
