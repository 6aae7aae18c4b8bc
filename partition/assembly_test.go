package partition

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

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

	t1, t2 := time.Unix(100, 0), time.Unix(200, 0)
	ver1, err := a.Begin(ctx, manifestOf(t, v1, psize), t1)
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
	ver2, err := a.Begin(ctx, manifestOf(t, v2, psize), t2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Begin(ctx, manifestOf(t, v1, psize), t1); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("the older version begun again over the newer: %v", err)
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
	if _, err := a.Begin(ctx, manifestOf(t, v1, psize), t1); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("the older version begun over the newer one in place: %v", err)
	}
	if _, err := a.Begin(ctx, manifestOf(t, v2, psize), t2); !errors.Is(err, ErrDone) {
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
