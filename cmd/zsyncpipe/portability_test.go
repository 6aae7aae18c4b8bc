package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

// TestSyncBusy: a sync of an output whose .part another sync holds exits
// 75 at once with a message saying so, and touches nothing.
func TestSyncBusy(t *testing.T) {
	fx := newFixture(t, 300000, "--legacy")
	out := filepath.Join(fx.dir, "out.bin")
	held, err := osfile.OpenLocked(out+".part", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := runZ(t, "sync", "-i", fx.old, "-o", out, fx.control)
	if r.code != exitBusy || !strings.Contains(r.stderr, "another sync is writing") {
		t.Fatalf("exit %d, want %d\nstderr: %s", r.code, exitBusy, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output created: %v", err)
	}
	held.Close()
	mustRun(t, "sync", "-q", "-i", fx.old, "-o", out, fx.control)
	sameBytes(t, "output", readFile(t, out), fx.newData)
}

// TestCheckFilenameWindows: on Windows, a Filename naming a device or a
// name Windows would alter is refused as a bad control file, not written to
// another file than it says; elsewhere the same names are plain names.
func TestCheckFilenameWindows(t *testing.T) {
	for _, name := range []string{"NUL", "con.txt", "data.", "data ", "a:b", `a\b`, "COM1.iso"} {
		err := checkFilenameFor("windows", name)
		if exitCode(err) != exitBadControl || !strings.Contains(err.Error(), "Filename") {
			t.Errorf("checkFilenameFor(windows, %q) = %v, want a bad-control error", name, err)
		}
	}
	for _, name := range []string{"NUL", "data.", "a:b"} {
		if err := checkFilenameFor("linux", name); err != nil {
			t.Errorf("checkFilenameFor(linux, %q) = %v", name, err)
		}
	}
	if err := checkFilenameFor("windows", "go1.26.8.tar"); err != nil {
		t.Errorf("checkFilenameFor(windows, a plain name) = %v", err)
	}
}
