//go:build unix

package partition

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary a writer process (see child).
const childEnv = "ZSYNCPIPE_PARTITION_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child is one writer process: it assembles TARGET from SOURCE with the
// manifest in MANIFEST, taking the partitions in its own random order,
// each slowly (DELAY per 64 KiB), as a subscriber that got every message
// would. While it writes partition n it holds the marker MARKERS/n,
// created exclusively: a marker held by another live process means two
// processes write one partition at once (exit 3). It prints "placed"
// when it put the file in place.
func child() int {
	get := func(k string) string { return os.Getenv(childEnv + "_" + k) }
	var m Manifest
	b, err := os.ReadFile(get("MANIFEST"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	src, err2 := os.Open(get("SOURCE"))
	delay, err3 := time.ParseDuration(get("DELAY"))
	if err := errors.Join(err, err2, err3); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	v, err := New(get("TARGET"), Options{}).Begin(ctx, &m, time.Unix(1, 0))
	if errors.Is(err, ErrDone) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, n := range rand.Perm(len(m.Parts)) {
		c, err := v.Claim(ctx, n)
		if errors.Is(err, ErrDone) {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		marker := filepath.Join(get("MARKERS"), strconv.Itoa(n))
		if code := takeMarker(marker); code != 0 {
			return code
		}
		w := io.NewOffsetWriter(c.Writer(), 0)
		r := io.NewSectionReader(src, c.Offset(), c.Size())
		buf := make([]byte, 64<<10)
		for {
			k, err := r.Read(buf)
			if k > 0 {
				if _, err := w.Write(buf[:k]); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 2
				}
				time.Sleep(delay)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
		os.Remove(marker)
		_, err = c.Commit(ctx)
		c.Release()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	complete, err := v.Local(ctx)
	if errors.Is(err, ErrDone) {
		return 0 // another placed it
	}
	if err != nil || !complete {
		fmt.Fprintln(os.Stderr, "not complete:", err)
		return 2
	}
	err = v.Place(ctx, func(path string) error { return os.Rename(path, get("TARGET")) })
	if errors.Is(err, ErrDone) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("placed")
	return 0
}

// takeMarker creates the marker exclusively; one left by a dead process
// is taken over.
func takeMarker(path string) int {
	for range 3 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			fmt.Fprint(f, os.Getpid())
			f.Close()
			return 0
		}
		b, _ := os.ReadFile(path)
		pid, _ := strconv.Atoi(string(b))
		if pid > 0 && alive(pid) {
			fmt.Fprintf(os.Stderr, "partition %s is being written by process %d too\n", filepath.Base(path), pid)
			return 3
		}
		os.Remove(path)
	}
	return 2
}

// alive reports whether process pid still runs. A killed process releases
// its locks as it exits but stays a zombie until its parent (the test)
// waits for it, and signal 0 still reaches a zombie: where /proc says so,
// a zombie is dead.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc (macOS, BSD): signal 0 decides
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

// TestProcesses: three processes assemble one file of 16 partitions, each
// going through every partition (as subscribers that all got every
// message); one is killed with SIGKILL in the middle of a partition and a
// fourth starts in its place. The file is placed once, byte-exact, and no
// partition was ever written by two processes at once.
func TestProcesses(t *testing.T) {
	dir := t.TempDir()
	const psize = 256 << 10
	data := randomBytes(1, 16*psize-999)
	src, target, markers := filepath.Join(dir, "src"), filepath.Join(dir, "out", "file"), filepath.Join(dir, "markers")
	writeFile(t, src, data)
	os.Mkdir(filepath.Dir(target), 0o755)
	os.Mkdir(markers, 0o755)
	writeFile(t, target, randomBytes(2, 3*psize)) // an old version, shorter
	mb, _ := json.Marshal(manifestOf(t, data, psize))
	writeFile(t, filepath.Join(dir, "manifest"), mb)

	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = append(os.Environ(), childEnv+"=1",
			childEnv+"_TARGET="+target, childEnv+"_SOURCE="+src, childEnv+"_MARKERS="+markers,
			childEnv+"_MANIFEST="+filepath.Join(dir, "manifest"), childEnv+"_DELAY=10ms")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 3 {
		c, o := start()
		cmds, outs = append(cmds, c), append(outs, o)
	}
	// Kill the first once it holds a marker: in the middle of a partition.
	deadline := time.Now().Add(30 * time.Second)
	killed := false
	for !killed && time.Now().Before(deadline) {
		ents, _ := os.ReadDir(markers)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(markers, e.Name()))
			if pid, _ := strconv.Atoi(string(b)); pid == cmds[0].Process.Pid {
				cmds[0].Process.Signal(syscall.SIGKILL)
				killed = true
				t.Logf("killed process %d while it wrote partition %s", pid, e.Name())
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !killed {
		t.Fatal("the first process never wrote a partition")
	}
	cmds[0].Wait()
	c, o := start()
	cmds, outs = append(cmds[1:], c), append(outs[1:], o)
	placed := 0
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
		placed += strings.Count(outs[i].String(), "placed")
	}
	if placed != 1 {
		t.Errorf("placed %d times", placed)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the assembled file differs")
	}
}
