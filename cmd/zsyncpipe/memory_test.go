package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"testing"
)

// checkGCCommand runs a command with -v (run, on the output it returns,
// which the memory line goes to) and checks that the output holds the
// memory line with the GOGC the command runs with (want, unless the GOGC
// environment variable is set) and that the command restored the
// previous setting when it returned.
func checkGCCommand(t *testing.T, name string, want int, run func() string) {
	t.Helper()
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	out := run()
	gogc := strconv.Itoa(want)
	if _, set := os.LookupEnv("GOGC"); set {
		gogc = `-?\d+`
	}
	re := regexp.MustCompile(`(?m)^memory: peak RSS (\d+(\.\d+)? [KMG]iB|unknown); the Go runtime holds \d+(\.\d+)? [KMG]iB, the heap had \d+(\.\d+)? ([KMG]i)?B live at the last collection; GOGC ` + gogc + `\n`)
	if !re.MatchString(out) {
		t.Errorf("no memory line with GOGC %s in %s -v's output:\n%s", gogc, name, out)
	}
	if after := debug.SetGCPercent(before); after != before {
		t.Errorf("GOGC is %d after %s, was %d", after, name, before)
	}
}

// sync -v ends with a line on the memory used (on stderr), and sync runs
// with GOGC 10 unless GOGC is set, restoring the previous setting when it
// returns.
func TestSyncVerboseMemory(t *testing.T) {
	fx := newFixture(t, 1<<20+123)
	checkGCCommand(t, "sync", syncGCPercent, func() string {
		return mustRun(t, "sync", "-v", "-i", fx.old, "-o", filepath.Join(fx.dir, "out"), fx.control).stderr
	})
}

// mirror -v ends with the same line (on stdout, after the phases), and
// mirror runs with GOGC 200 unless GOGC is set.
func TestMirrorVerboseMemory(t *testing.T) {
	tmp := t.TempDir()
	pub := filepath.Join(tmp, "pub")
	mirrorTrees(t, pub, filepath.Join(tmp, "dst"))
	mustRun(t, "index", "--no-fsync", pub)
	base, stop := startServe(t, pub)
	defer stop()
	checkGCCommand(t, "mirror", mirrorGCPercent, func() string {
		return mustRun(t, "mirror", "-v", "--delete", base, filepath.Join(tmp, "dst")).stdout
	})
}
