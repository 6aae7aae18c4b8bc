package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestVersionsDeterministic(t *testing.T) {
	o1, n1, e1 := Versions(7, 1<<20)
	o2, n2, e2 := Versions(7, 1<<20)
	if !bytes.Equal(o1, o2) || !bytes.Equal(n1, n2) || e1 != e2 {
		t.Fatal("same seed, different data")
	}
	o3, _, _ := Versions(8, 1<<20)
	if bytes.Equal(o1, o3) {
		t.Error("different seeds, same data")
	}
	if len(o1) != 1<<20 {
		t.Errorf("old version has %d bytes, want %d", len(o1), 1<<20)
	}
	if bytes.Equal(o1, n1) {
		t.Error("new version equals old version")
	}
}

func TestVersionsEdits(t *testing.T) {
	old, new, e := Versions(1, DefaultSize)
	if e.Inserts == 0 || e.Deletes == 0 || e.Overwrites == 0 || e.Moves == 0 {
		t.Errorf("not every kind of edit: %v", e)
	}
	// The new length follows from the edits: moves keep the length.
	want := int64(len(old)) + e.InsertBytes - e.DeleteBytes
	if int64(len(new)) != want {
		t.Errorf("new version has %d bytes, want %d from %v", len(new), want, e)
	}
	// Most of the old version survives, in 4 KiB pieces.
	var found, total int
	for off := 0; off+4096 <= len(old); off += 1 << 20 {
		total++
		if bytes.Contains(new, old[off:off+4096]) {
			found++
		}
	}
	if found*10 < total*7 {
		t.Errorf("only %d of %d sampled blocks of the old version are in the new one", found, total)
	}
	// And the changed share is small but real.
	changed := e.InsertBytes + e.DeleteBytes + e.OverwriteBytes + e.MoveBytes
	if changed < int64(len(old))/200 || changed > int64(len(old))/5 {
		t.Errorf("edits touch %d of %d bytes", changed, len(old))
	}
	if s := e.String(); !strings.Contains(s, "inserts") || !strings.Contains(s, "moves") {
		t.Errorf("String() = %q", s)
	}
}

func TestVersionsSmall(t *testing.T) {
	for _, size := range []int{0, 1, 100, 5000} {
		old, _, _ := Versions(1, size)
		if len(old) != size {
			t.Errorf("Versions(1, %d): old has %d bytes", size, len(old))
		}
	}
}

func TestRun(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		dir := t.TempDir()
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := Run(ctx, &out, Options{Size: 2 << 20, Seed: 3, Legacy: legacy, Dir: dir})
		cancel()
		if err != nil {
			t.Fatalf("legacy=%v: %v\n%s", legacy, err, out.String())
		}
		for _, re := range []string{
			`(?m)^data +old version 2\.0 MiB`,
			`(?m)^make +sample\.bin\.zsync: \d+ blocks of 2\.0 KiB, MD[45] block hashes`,
			`(?m)^sync +sample\.bin: .* reused from local data, .* fetched`,
			`(?m)^verify +output is byte-identical`,
		} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("legacy=%v: output lacks %s:\n%s", legacy, re, out.String())
			}
		}
		if legacy != strings.Contains(out.String(), "MD4 block hashes") {
			t.Errorf("legacy=%v: wrong block hash:\n%s", legacy, out.String())
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("working directory not removed: %v", ents)
		}
	}
}

func TestRunKeep(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := Run(context.Background(), &out, Options{Size: 100000, Dir: dir, Keep: true}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`(?m)^kept +(.+)$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no kept line:\n%s", out.String())
	}
	for _, f := range []string{"server/sample.bin", "server/sample.bin.zsync", "client/sample.bin"} {
		if _, err := os.Stat(filepath.Join(m[1], f)); err != nil {
			t.Error(err)
		}
	}
	a, _ := os.ReadFile(filepath.Join(m[1], "server/sample.bin"))
	b, _ := os.ReadFile(filepath.Join(m[1], "client/sample.bin"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("kept client file differs from the server file")
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if err := Run(ctx, &bytes.Buffer{}, Options{Size: 1 << 20, Dir: dir}); err == nil {
		t.Error("Run with a canceled context succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("working directory not removed: %v", ents)
	}
}

func TestRunBadSize(t *testing.T) {
	if err := Run(context.Background(), &bytes.Buffer{}, Options{Size: -1}); err == nil {
		t.Error("negative size accepted")
	}
}

func TestFirstDiff(t *testing.T) {
	a := bytes.Repeat([]byte{1}, 200000)
	b := bytes.Clone(a)
	if _, ok := firstDiff(a, b); !ok {
		t.Error("equal slices differ")
	}
	b[150001] = 2
	if i, ok := firstDiff(a, b); ok || i != 150001 {
		t.Errorf("firstDiff = %d, %v", i, ok)
	}
	if i, ok := firstDiff(a, a[:10]); ok || i != 10 {
		t.Errorf("prefix: firstDiff = %d, %v", i, ok)
	}
}

func TestIndent(t *testing.T) {
	var out bytes.Buffer
	in := &indent{w: &out, prefix: "> "}
	in.Write([]byte("a\nb"))
	in.Write([]byte("c\n\nd\n"))
	if got, want := out.String(), "> a\n> bc\n> \n> d\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRunAnnounce(t *testing.T) {
	var out bytes.Buffer
	if err := RunAnnounce(context.Background(), &out, Options{Size: 4 << 20, Seed: 3, Dir: t.TempDir()}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"broker", "announce", "synced data/sample.bin", "sha512 verified"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
