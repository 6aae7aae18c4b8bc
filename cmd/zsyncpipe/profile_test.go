package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartProfile(t *testing.T) {
	var stderr bytes.Buffer
	p := filepath.Join(t.TempDir(), "cpu.prof")
	stop := startProfile(p, &stderr)
	stop()
	fi, err := os.Stat(p)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("profile %s: %v, %v", p, fi, err)
	}
	startProfile("", &stderr)() // nothing
	startProfile(filepath.Join(t.TempDir(), "no", "such", "dir"), &stderr)()
	if !strings.Contains(stderr.String(), "ZSYNCPIPE_CPUPROFILE") {
		t.Fatalf("stderr %q: want the failure reported", stderr.String())
	}
}
