package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"testing"
)

// sync -v ends with a line on the memory used, and sync runs with GOGC 10
// unless GOGC is set, restoring the previous setting when it returns.
func TestSyncVerboseMemory(t *testing.T) {
	fx := newFixture(t, 1<<20+123)
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	r := mustRun(t, "sync", "-v", "-i", fx.old, "-o", filepath.Join(fx.dir, "out"), fx.control)
	gogc := `10`
	if _, set := os.LookupEnv("GOGC"); set {
		gogc = `-?\d+`
	}
	re := regexp.MustCompile(`(?m)^memory: peak RSS (\d+(\.\d+)? [KMG]iB|unknown); the Go runtime holds \d+(\.\d+)? [KMG]iB, the heap had \d+(\.\d+)? ([KMG]i)?B live at the last collection; GOGC ` + gogc + `\n`)
	if !re.MatchString(r.stderr) {
		t.Errorf("no memory line in sync -v's output:\n%s", r.stderr)
	}
	after := debug.SetGCPercent(before)
	if after != before {
		t.Errorf("GOGC is %d after sync, was %d", after, before)
	}
}

// mirror -v ends with the same line, and mirror runs with GOGC 200 unless
// GOGC is set, restoring the previous setting when it returns.
func TestMirrorVerboseMemory(t *testing.T) {
	tmp := t.TempDir()
	pub := filepath.Join(tmp, "pub")
	mirrorTrees(t, pub, filepath.Join(tmp, "dst"))
	mustRun(t, "index", "--no-fsync", pub)
	base, stop := startServe(t, pub)
	defer stop()
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	r := mustRun(t, "mirror", "-v", "--delete", base, filepath.Join(tmp, "dst"))
	gogc := `200`
	if _, set := os.LookupEnv("GOGC"); set {
		gogc = `-?\d+`
	}
	re := regexp.MustCompile(`(?m)^memory: peak RSS (\d+(\.\d+)? [KMG]iB|unknown); the Go runtime holds \d+(\.\d+)? [KMG]iB, the heap had \d+(\.\d+)? ([KMG]i)?B live at the last collection; GOGC ` + gogc + `\n`)
	if !re.MatchString(r.stdout) {
		t.Errorf("no memory line in mirror -v's output:\n%s", r.stdout)
	}
	if after := debug.SetGCPercent(before); after != before {
		t.Errorf("GOGC is %d after mirror, was %d", after, before)
	}
}
