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
	v, err := New(get("TARGET"), Options{}).Begin(ctx, &m)
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
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			fmt.Fprintf(os.Stderr, "partition %s is being written by process %d too\n", filepath.Base(path), pid)
			return 3
		}
		os.Remove(path)
	}
	return 2
}

func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func manifestOf(t *testing.T, data []byte, size int64) *Manifest {
	t.Helper()
	m, err := Make(bytes.NewReader(data), int64(len(data)), size, "sha512")
	if err != nil {
		t.Fatal(err)
	}
	return m
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

// TestVersions: a new version begun while an older one is being written
// keeps the partitions they share; the older one's writer can no longer
// mark its partition in; the target's unchanged partitions are copied.
func TestVersions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	target := filepath.Join(dir, "f")
	const psize = 64 << 10
	v0 := randomBytes(10, 4*psize)
	writeFile(t, target, v0)
	v1 := append(bytes.Clone(v0[:3*psize]), randomBytes(11, psize)...)                        // last partition changed
	v2 := append(append(bytes.Clone(v0[:psize]), randomBytes(12, psize)...), v1[2*psize:]...) // and the second
	a := New(target, Options{NoFsync: true})

	ver1, err := a.Begin(ctx, manifestOf(t, v1, psize))
	if err != nil {
		t.Fatal(err)
	}
	c3, err := ver1.Claim(ctx, 3)
	if err != nil || c3.Local {
		t.Fatalf("%v %+v", err, c3)
	}
	if _, err := c3.Writer().WriteAt(v1[3*psize:], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Writer().WriteAt([]byte{1}, psize); err == nil {
		t.Fatal("a write past the partition was let through")
	}
	if _, err := c3.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c3.Release()
	c1, err := ver1.Claim(ctx, 1)
	if err != nil || !c1.Local {
		t.Fatalf("%v %+v", err, c1)
	}

	// A second version while partition 1 of the first is claimed.
	ver2, err := a.Begin(ctx, manifestOf(t, v2, psize))
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.CopyTarget(); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Commit(ctx); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("commit of the older version: %v", err)
	}
	c1.Release()
	if _, err := ver2.Claim(ctx, 3); !errors.Is(err, ErrDone) {
		t.Fatalf("partition 3, the same in both, is not kept: %v", err)
	}
	if _, err := ver1.Claim(ctx, 0); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("claim of the older version: %v", err)
	}
	c, err := ver2.Claim(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Writer().WriteAt(v1[psize:2*psize], 0); err != nil { // the wrong version
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong data committed: %v", err)
	}
	if _, err := c.Writer().WriteAt(v2[psize:2*psize], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c.Release()
	complete, err := ver2.Local(ctx) // partitions 0 and 2
	if err != nil || !complete {
		t.Fatalf("%v %v", complete, err)
	}
	if err := ver2.Place(ctx, func(p string) error { return os.Rename(p, target) }); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(target)
	if !bytes.Equal(got, v2) {
		t.Fatal("wrong result")
	}
	if _, err := a.Begin(ctx, manifestOf(t, v2, psize)); !errors.Is(err, ErrDone) {
		t.Fatalf("begin of the placed version: %v", err)
	}
	if err := ver2.Place(ctx, func(string) error { return errors.New("placed twice") }); !errors.Is(err, ErrDone) {
		t.Fatalf("second place: %v", err)
	}
}

// TestManifestCheck: manifests that do not tile a file are refused.
func TestManifestCheck(t *testing.T) {
	ok := Manifest{Size: 10, Method: "sha512", Parts: []Part{{10, "a"}, {3, "b"}}}
	if err := ok.Check(100); err != nil || ok.Length() != 13 {
		t.Fatal(err, ok.Length())
	}
	for name, m := range map[string]Manifest{
		"zero size":     {Size: 0, Method: "sha512", Parts: []Part{{0, "a"}}},
		"no parts":      {Size: 10, Method: "sha512"},
		"method":        {Size: 10, Method: "random", Parts: []Part{{10, "a"}}},
		"short middle":  {Size: 10, Method: "sha512", Parts: []Part{{9, "a"}, {3, "b"}}},
		"long last":     {Size: 10, Method: "sha512", Parts: []Part{{10, "a"}, {11, "b"}}},
		"empty last":    {Size: 10, Method: "sha512", Parts: []Part{{10, "a"}, {0, "b"}}},
		"too long":      {Size: 60, Method: "sha512", Parts: []Part{{60, "a"}, {60, "b"}}},
		"too many size": {Size: 1 << 62, Method: "sha512", Parts: []Part{{1 << 62, "a"}, {1 << 62, "b"}, {1, "c"}}},
	} {
		if err := m.Check(100); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
