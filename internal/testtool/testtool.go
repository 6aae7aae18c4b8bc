// Package testtool finds the external programs that tests run (zsync,
// zsyncmake, nginx, …), with one rule for all of them: a missing program
// skips the test, unless the environment variable CI is set, where .ci/run
// installs it and its absence fails the test.
package testtool

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Look returns the path of the program name, from Debian package pkg,
// looked for in PATH and in /usr/sbin and /sbin. When it is missing the
// test fails if CI is set, and is skipped otherwise.
func Look(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := Find(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (apt-get install %s): %v", name, pkg, err)
		}
		t.Skipf("%s not installed (apt-get install %s): %v", name, pkg, err)
	}
	return p
}

// Find returns the path of the program name, looked for in PATH and in
// /usr/sbin and /sbin, for tests that go on without it.
func Find(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, e := os.Stat(filepath.Join(dir, name)); e == nil {
			return filepath.Join(dir, name), nil
		}
	}
	return "", err
}
