package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
)

func TestProgressLine(t *testing.T) {
	if p := newProgress(&bytes.Buffer{}, false); p != nil {
		t.Error("progress on a buffer")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	var nilp *progressLine
	if nilp.callback() != nil {
		t.Error("nil progress has a callback")
	}
	nilp.clear() // must not panic

	var buf bytes.Buffer
	p := &progressLine{w: &buf}
	p.update(zsyncpipe.Progress{Phase: "scan", Done: 1 << 20, Total: 4 << 20})
	p.update(zsyncpipe.Progress{Phase: "fetch", Done: 10, Total: 0})
	p.clear()
	scan := "scan   [#####---------------] 1.0 MiB of 4.0 MiB"
	fetch := "fetch  10 B"
	want := "\r" + scan + "\r" + fetch + strings.Repeat(" ", len(scan)-len(fetch)) + "\r" + strings.Repeat(" ", len(fetch)) + "\r"
	if got := buf.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestProgressText(t *testing.T) {
	got := progressText(zsyncpipe.Progress{Phase: "fetch", Done: 1 << 20, Total: 4 << 20}, time.Second)
	for _, want := range []string{"[#####---------------]", "1.0 MiB of 4.0 MiB", "1.0 MB/s", "ETA 3.00s"} {
		if !strings.Contains(got, want) {
			t.Errorf("progressText = %q, lacks %q", got, want)
		}
	}
}

// TestBinary builds the command and checks what only a real process shows:
// exit codes through main and the output streams.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "zsyncpipe")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, 3},
		{[]string{"version"}, 0},
		{[]string{"make", "-b", "3"}, 3},
		{[]string{"sync", filepath.Join(t.TempDir(), "missing.zsync")}, 2},
	} {
		cmd := exec.Command(bin, tt.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code {
			t.Errorf("zsyncpipe %q: exit %d, want %d\nstderr: %s", tt.args, code, tt.code, stderr.String())
		}
		if code == 0 && stdout.Len() == 0 {
			t.Errorf("zsyncpipe %q: no output", tt.args)
		}
	}
}
