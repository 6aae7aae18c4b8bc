package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// result is the outcome of one in-process run.
type result struct {
	code           int
	stdout, stderr string
}

// runZ runs zsyncpipe in-process with args and a timeout.
func runZ(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// mustRun runs zsyncpipe and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := runZ(t, args...)
	if r.code != 0 {
		t.Fatalf("zsyncpipe %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// lookTool returns the path of the external program name (package zsync),
// as testtool.Look.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	return testtool.Look(t, name, "zsync")
}

// tool runs an external program with a timeout in dir, with proxies removed
// from the environment, and returns its combined output. It fails the test
// if the program fails.
func tool(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lookTool(t, name), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.EqualFold(k, "http_proxy") || strings.EqualFold(k, "https_proxy") || strings.EqualFold(k, "all_proxy") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writeFile writes data to path, creating its directory.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readFile returns the contents of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameBytes fails the test if got and want differ, naming the first
// difference.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: differs at byte %d (lengths %d, want %d)", what, i, len(got), len(want))
}

// splitControl splits a control file into its header lines and its block
// records.
func splitControl(t *testing.T, b []byte) (header map[string]string, records []byte) {
	t.Helper()
	i := bytes.Index(b, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("control file has no empty line:\n%q", b)
	}
	header = make(map[string]string)
	for _, line := range strings.Split(string(b[:i]), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("bad header line %q", line)
		}
		if old, dup := header[k]; dup {
			v = old + "\n" + v
		}
		header[k] = v
	}
	return header, b[i+2:]
}

// dirNames returns the sorted names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
