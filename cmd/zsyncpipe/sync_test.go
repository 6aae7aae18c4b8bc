package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/demo"
)

// goodHeader is a valid legacy header of a 5000-byte file: three blocks of
// 2048 bytes with 2+4 bytes per record.
const goodHeader = "zsync: 0.6.2\n" +
	"Filename: data.bin\n" +
	"Blocksize: 2048\n" +
	"Length: 5000\n" +
	"Hash-Lengths: 2,2,4\n" +
	"URL: data.bin\n" +
	"SHA-1: 0000000000000000000000000000000000000000\n" +
	"\n"

var goodRecords = bytes.Repeat([]byte{1, 2, 3, 4, 5, 6}, 3)

func TestSyncMalformedControl(t *testing.T) {
	// The well-formed file parses (and then fails for lack of data, which
	// is not a control-file error): this keeps the cases below honest.
	dir := t.TempDir()
	good := filepath.Join(dir, "good.zsync")
	writeFile(t, good, append([]byte(goodHeader), goodRecords...))
	if _, err := control.Read(bytes.NewReader(readFile(t, good))); err != nil {
		t.Fatalf("the reference control file does not parse: %v", err)
	}

	tests := []struct {
		name string
		data string
		want []string // substrings of stderr
	}{
		{"blocksize", strings.Replace(goodHeader, "Blocksize: 2048", "Blocksize: 3000", 1) + string(goodRecords),
			[]string{"line 3", "Blocksize"}},
		{"length", strings.Replace(goodHeader, "Length: 5000", "Length: lots", 1) + string(goodRecords),
			[]string{"line 4", "Length"}},
		{"no separator", strings.Replace(goodHeader, "Hash-Lengths: 2,2,4", "Hash-Lengths 2,2,4", 1) + string(goodRecords),
			[]string{"line 5"}},
		{"unknown header", strings.Replace(goodHeader, "URL: data.bin\n", "URL: data.bin\nX-Fancy: yes\n", 1) + string(goodRecords),
			[]string{"line 7", "X-Fancy"}},
		{"slash in filename", strings.Replace(goodHeader, "Filename: data.bin", "Filename: ../data.bin", 1) + string(goodRecords),
			[]string{"Filename"}},
		{"truncated records", goodHeader + string(goodRecords[:10]), []string{"truncated"}},
		{"no header end", "zsync: 0.6.2\nBlocksize: 2048\n", []string{"control file"}},
		{"empty", "", []string{"control file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bad.zsync")
			writeFile(t, path, []byte(tt.data))
			out := filepath.Join(dir, "out.bin")
			r := runZ(t, "sync", "-o", out, path)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "zsyncpipe: ") || !strings.Contains(r.stderr, path) {
				t.Errorf("stderr does not name the control file: %s", r.stderr)
			}
			for _, s := range tt.want {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q: %s", s, r.stderr)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output created: %v", err)
			}
		})
	}
}

func TestSyncUnusableFilename(t *testing.T) {
	// A control file without a Filename parses but gives no default
	// output name: exit 1 unless -o is given.
	dir := t.TempDir()
	t.Chdir(dir)
	data := strings.Replace(goodHeader, "Filename: data.bin\n", "", 1) + string(goodRecords)
	writeFile(t, "x.zsync", []byte(data))
	// Such a file is valid (zsync's Filename is optional): the error must
	// come from the command, not the parser.
	if _, err := control.Read(strings.NewReader(data)); err != nil {
		t.Fatalf("control.Read rejects a file without Filename: %v", err)
	}
	r := runZ(t, "sync", "x.zsync")
	if r.code != 1 || !strings.Contains(r.stderr, "no Filename") || !strings.Contains(r.stderr, "-o") {
		t.Errorf("exit %d, stderr %q; want 1 and a hint to use -o", r.code, r.stderr)
	}
}

func TestSyncMissingControl(t *testing.T) {
	r := runZ(t, "sync", "-o", filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "nope.zsync"))
	if r.code != 2 || !strings.Contains(r.stderr, "nope.zsync") {
		t.Errorf("exit %d, stderr %q; want 2 naming the file", r.code, r.stderr)
	}
}

// fixture is a target file, its old version and a control file of the
// target, laid out as
//
//	dir/srv/data.bin        the target
//	dir/srv/data.bin.zsync  its control file (relative URL data.bin)
//	dir/old.bin             the old version
type fixture struct {
	dir, target, control, old string
	oldData, newData          []byte
}

// newFixture generates the files and makes the control file with
// "zsyncpipe make" and extra flags.
func newFixture(t *testing.T, size int, makeFlags ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		dir:     dir,
		target:  filepath.Join(dir, "srv", "data.bin"),
		control: filepath.Join(dir, "srv", "data.bin.zsync"),
		old:     filepath.Join(dir, "old.bin"),
	}
	f.oldData, f.newData, _ = demo.Versions(42, size)
	writeFile(t, f.target, f.newData)
	writeFile(t, f.old, f.oldData)
	args := append([]string{"make", "-q"}, makeFlags...)
	mustRun(t, append(args, "-o", f.control, f.target)...)
	return f
}

var formats = []struct {
	name  string
	flags []string
}{
	{"spec0.8", nil},
	{"legacy", []string{"--legacy"}},
}

func TestMakeDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	data, _, _ := demo.Versions(1, 100000)
	writeFile(t, filepath.Join("sub", "f.bin"), data)
	r := mustRun(t, "make", filepath.Join("sub", "f.bin"))
	// zsyncmake writes FILE's base name + .zsync in the current directory,
	// with a URL relative to it.
	b := readFile(t, "f.bin.zsync")
	f, err := control.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Filename != "f.bin" || !slices.Equal(f.URLs, []string{"sub/f.bin"}) || f.Length != 100000 || f.Blocksize != 2048 {
		t.Errorf("header: Filename %q URLs %q Length %d Blocksize %d", f.Filename, f.URLs, f.Length, f.Blocksize)
	}
	if !regexp.MustCompile(`^f\.bin\.zsync: 49 blocks of 2\.0 KiB .*control file .*, in [0-9.]+s, .*B/s\n$`).MatchString(r.stdout) {
		t.Errorf("summary: %q", r.stdout)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"f.bin.zsync", "sub"}) {
		t.Errorf("files left: %q", names)
	}
	if fi, err := os.Stat("f.bin.zsync"); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode of the control file: %v %v", fi.Mode(), err)
	}

	// -f, -u, -b and -q.
	r = mustRun(t, "make", "-q", "-f", "renamed.bin", "-u", "http://a.example/f.bin", "-u", "http://b.example/f.bin",
		"-b", "4KiB", "-o", "g.zsync", filepath.Join("sub", "f.bin"))
	if r.stdout != "" {
		t.Errorf("-q printed %q", r.stdout)
	}
	f, err = control.Read(bytes.NewReader(readFile(t, "g.zsync")))
	if err != nil {
		t.Fatal(err)
	}
	if f.Filename != "renamed.bin" || len(f.URLs) != 2 || f.Blocksize != 4096 {
		t.Errorf("header: Filename %q URLs %q Blocksize %d", f.Filename, f.URLs, f.Blocksize)
	}
}

func TestMakeMissingFile(t *testing.T) {
	dir := t.TempDir()
	r := runZ(t, "make", "-o", filepath.Join(dir, "x.zsync"), filepath.Join(dir, "nope"))
	if r.code != 2 || !strings.Contains(r.stderr, "nope") {
		t.Errorf("exit %d, stderr %q; want 2", r.code, r.stderr)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("files left: %q", names)
	}
}

func TestMakeSyncRoundTrip(t *testing.T) {
	for _, format := range formats {
		t.Run(format.name, func(t *testing.T) {
			fx := newFixture(t, 1<<20+123, format.flags...)
			work := filepath.Join(fx.dir, "work")
			if err := os.Mkdir(work, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Chdir(work)
			// Output defaults to the Filename in the current directory;
			// -k saves the control file.
			r := mustRun(t, "sync", "-i", fx.old, "-k", "saved.zsync", fx.control)
			sameBytes(t, "output", readFile(t, "data.bin"), fx.newData)
			sameBytes(t, "-k copy", readFile(t, "saved.zsync"), readFile(t, fx.control))
			if !regexp.MustCompile(`^data\.bin: 1\.0 MiB \(.* reused from local data, .* fetched( in \d+ ranges?.*)?\) in [0-9.]+s, .*B/s of output\n$`).MatchString(r.stdout) {
				t.Errorf("summary: %q", r.stdout)
			}
			if r.stderr != "" {
				t.Errorf("stderr: %q", r.stderr)
			}
			if names := dirNames(t, work); !slices.Equal(names, []string{"data.bin", "saved.zsync"}) {
				t.Errorf("files left: %q", names)
			}

			// Again, now the output is complete: nothing to fetch.
			r = mustRun(t, "sync", "-q", fx.control)
			if r.stdout != "" {
				t.Errorf("-q printed %q", r.stdout)
			}
			sameBytes(t, "output after second sync", readFile(t, "data.bin"), fx.newData)

			// With -u pointing at the control file's real location, from a
			// copy elsewhere.
			mustRun(t, "sync", "-q", "-i", fx.old, "-o", "copy.bin", "-u", fx.control, "saved.zsync")
			sameBytes(t, "output with -u", readFile(t, "copy.bin"), fx.newData)
		})
	}
}

// corruptFileHash changes every whole-file hash of a control file.
func corruptFileHash(t *testing.T, b []byte) []byte {
	t.Helper()
	header, records, _ := bytes.Cut(b, []byte("\n\n"))
	re := regexp.MustCompile(`(?m)^(SHA-1: |File-Hash: SHA-256:)([0-9a-f])`)
	n := 0
	header = re.ReplaceAllFunc(header, func(m []byte) []byte {
		n++
		last := m[len(m)-1]
		if last == '0' {
			last = '1'
		} else {
			last = '0'
		}
		return append(m[:len(m)-1:len(m)-1], last)
	})
	if n == 0 {
		t.Fatalf("no file hash in header:\n%s", header)
	}
	return append(append(header, "\n\n"...), records...)
}

func TestSyncFailureKeepsOutput(t *testing.T) {
	for _, format := range formats {
		t.Run(format.name, func(t *testing.T) {
			fx := newFixture(t, 300000, format.flags...)
			bad := filepath.Join(fx.dir, "srv", "bad.zsync")
			writeFile(t, bad, corruptFileHash(t, readFile(t, fx.control)))

			work := filepath.Join(fx.dir, "work")
			precious := []byte("the previous version, which must survive\n")
			writeFile(t, filepath.Join(work, "data.bin"), precious)
			t.Chdir(work)
			r := runZ(t, "sync", "-i", fx.old, bad)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "zsyncpipe: ") || !strings.Contains(r.stderr, "checksum") {
				t.Errorf("stderr: %q", r.stderr)
			}
			sameBytes(t, "existing output", readFile(t, "data.bin"), precious)
			for _, name := range dirNames(t, work) {
				if name != "data.bin" && name != "data.bin.part" {
					t.Errorf("file left behind: %s", name)
				}
			}
		})
	}
}

func TestSyncFetchFailure(t *testing.T) {
	fx := newFixture(t, 300000, "--legacy")
	// The target is gone: the missing blocks cannot be fetched.
	if err := os.Remove(fx.target); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(fx.dir, "out.bin")
	r := runZ(t, "sync", "-i", fx.old, "-o", out, fx.control)
	if r.code != 3 || !strings.HasPrefix(r.stderr, "zsyncpipe: ") {
		t.Fatalf("exit %d, want 3\nstderr: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output created: %v", err)
	}
}
