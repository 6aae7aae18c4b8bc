// Package testtool finds the external programs that tests run (zsync,
// zsyncmake, nginx, …), with one rule for all of them: a missing program
// skips the test, unless the environment variable CI is set, where .ci/run
// installs it and its absence fails the test.
package testtool

import (
	"fmt"
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
	Require(t, fmt.Sprintf("%s not installed (apt-get install %s)", name, pkg), err)
	return p
}

// Require applies the same rule to a prerequisite other than a program (a
// Python module, a feature of an installed tool): when err is not nil the
// test fails if CI is set, and is skipped otherwise, with the message
// "what: err".
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("%s: %v", what, err)
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
