package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/demo"
	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// TestFaultSuite runs "zsyncpipe sync" as a user would, against
// internal/faultserver with one fault each, and checks what the user gets:
// the exit code documented in the README, a message naming the problem,
// and on the disk either the verified result or the old output untouched
// with nothing beside it but OUTPUT.part and OUTPUT.part.state. Further
// cases live beside the code they concern (docs/failure-modes.md lists
// them): SIGINT in TestInterruptExitCode, kill -9 in resume_test.go, a full
// disk in TestSyncDiskFull, hostile control files in control's tests.
func TestFaultSuite(t *testing.T) {
	oldData, newData, _ := demo.Versions(7, 256<<10)
	corrupt := source.Range{Start: 100_000, End: 100_010}
	// Make sure the corrupt bytes are in a block that has to be fetched.
	copy(newData[corrupt.Start-2048:], bytes.Repeat([]byte{0x5a}, 4096))
	type tc struct {
		name  string
		opts  faultserver.Options
		flags []string
		code  int
		msg   string
		// url rewrites the server's file URL for the control file.
		url func(srv *faultserver.Server) string
	}
	cases := []tc{
		{name: "normal"},
		{name: "200-only", opts: faultserver.Options{IgnoreRanges: true}},
		{name: "max_ranges-1", opts: faultserver.Options{MaxRanges: 1, RejectStatus: 200}},
		{name: "multi-range-416", opts: faultserver.Options{MaxRanges: 1}},
		{name: "dropped-twice", opts: faultserver.Options{DropAfter: 2000, Faults: 2}},
		{name: "dropped-always", opts: faultserver.Options{DropAfter: 500}, flags: []string{"--retries", "1"}, code: exitUsage, msg: "gave up after 2 attempts"},
		{name: "503-once", opts: faultserver.Options{Status503: true, Faults: 1}},
		{name: "503-always", opts: faultserver.Options{Status503: true}, flags: []string{"--retries", "1"}, code: exitUsage, msg: "503 Service Unavailable"},
		{name: "429-twice", opts: faultserver.Options{Status429: true, RetryAfter: "0", Faults: 2}},
		{name: "stall-always", opts: faultserver.Options{Stall: time.Minute}, flags: []string{"--max-wait", "1s"}, code: exitUsage, msg: "and the limit is 1s"},
		{name: "wrong-bytes", opts: faultserver.Options{CorruptRange: corrupt}, code: exitUsage, msg: "failed its checksum"},
		{name: "changed-mid-sync", opts: faultserver.Options{ChangeAfter: 1}, flags: []string{"--parallel", "1", "--max-ranges", "1"}, code: exitUsage, msg: "remote file changed"},
		{name: "redirect", opts: faultserver.Options{RedirectFrom: "/old"}, url: func(s *faultserver.Server) string { return s.RedirectURL() }},
		{name: "401", opts: faultserver.Options{User: "u", Password: "p"}, code: exitUsage, msg: "401 Unauthorized"},
		{name: "401-credentials-in-URL", opts: faultserver.Options{User: "u", Password: "p"},
			url: func(s *faultserver.Server) string { return strings.Replace(s.URL(), "http://", "http://u:p@", 1) }},
		{name: "self-signed-TLS", opts: faultserver.Options{TLS: true}, code: exitUsage, msg: "certificate"},
		{name: "self-signed-TLS-ca-file", opts: faultserver.Options{TLS: true, HTTP2: true}, flags: []string{"--ca-file", "CA"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			srv := faultserver.New(newData, c.opts)
			t.Cleanup(srv.Close)
			target := filepath.Join(dir, "target.bin")
			writeFile(t, target, newData)
			u := srv.URL()
			if c.url != nil {
				u = c.url(srv)
			}
			ctl := filepath.Join(dir, "target.bin.zsync")
			mustRun(t, "make", "-q", "-b", "1024", "-u", u, "-o", ctl, target)
			os.Remove(target)
			outDir := filepath.Join(dir, "out")
			out := filepath.Join(outDir, "target.bin")
			writeFile(t, out, oldData)
			flags := slices.Clone(c.flags)
			for i, f := range flags {
				if f == "CA" {
					flags[i] = filepath.Join(dir, "ca.pem")
					writeFile(t, flags[i], srv.CertificatePEM())
				}
			}
			args := append(append([]string{"sync", "-q", "-o", out}, flags...), ctl)
			r := runZ(t, args...)
			if r.code != c.code || c.msg != "" && !strings.Contains(r.stderr, c.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, c.code, c.msg)
			}
			names := dirNames(t, outDir)
			if c.code == 0 {
				sameBytes(t, "output", readFile(t, out), newData)
				if !slices.Equal(names, []string{"target.bin"}) {
					t.Errorf("left beside the output: %q", names)
				}
				return
			}
			sameBytes(t, "output after a failure", readFile(t, out), oldData)
			if !slices.Equal(names, []string{"target.bin", "target.bin.part", "target.bin.part.state"}) {
				t.Errorf("left after a failure: %q, want the output, .part and .part.state", names)
			}
		})
	}
}

// Hostile and broken control files end in exit code 1 with the problem
// named, and touch nothing; an empty target syncs.
func TestFaultSuiteControlFiles(t *testing.T) {
	f := newFixture(t, 64<<10)
	good := string(readFile(t, f.control))
	hdrEnd := strings.Index(good, "\n\n")
	cases := []struct{ name, content, msg string }{
		{"garbage", "\x00\x01 not a control file\n", "NUL byte"},
		{"blocksize-1GiB", strings.Replace(good, "Blocksize: 2048", "Blocksize: 1073741824", 1), "Blocksize: out of range"},
		{"length-huge", regexp.MustCompile(`(?m)^Length: \d+$`).ReplaceAllString(good, "Length: 9000000000000000000"), "too large"},
		{"truncated-records", good[:len(good)-7], "truncated"},
		{"trailing-data", good + "x", "trailing data"},
		{"filename-path", strings.Replace(good[:hdrEnd], "Filename: data.bin", "Filename: ../evil", 1) + good[hdrEnd:], "Filename"},
		{"safe-file-hash-missing", "zsync: 0.8.0\nSafe: File-Hash\nBlocksize: 1024\nLength: 0\nStrong-Hash-Algorithm: MD5\nHash-Lengths: 1,4,16\n\n", "File-Hash, but there is none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ctl := filepath.Join(dir, "x.zsync")
			writeFile(t, ctl, []byte(c.content))
			t.Chdir(dir)
			r := runZ(t, "sync", "-i", f.old, ctl)
			if r.code != exitBadControl || !strings.Contains(r.stderr, c.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, exitBadControl, c.msg)
			}
			if names := dirNames(t, dir); !slices.Equal(names, []string{"x.zsync"}) {
				t.Errorf("left behind: %q", names)
			}
		})
	}
	t.Run("empty-target", func(t *testing.T) {
		dir := t.TempDir()
		empty := filepath.Join(dir, "empty")
		writeFile(t, empty, nil)
		mustRun(t, "make", "-q", "-o", filepath.Join(dir, "e.zsync"), empty)
		out := filepath.Join(dir, "out")
		writeFile(t, out, []byte("old content"))
		mustRun(t, "sync", "-q", "-o", out, filepath.Join(dir, "e.zsync"))
		if b := readFile(t, out); len(b) != 0 {
			t.Errorf("empty target: output has %d bytes", len(b))
		}
	})
}
