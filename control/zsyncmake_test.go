package control

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

var update = flag.Bool("update", false, "regenerate testdata with the real zsyncmake")

// testdataZsync is a zsyncmake 0.6.2 file for genData(100000, 7) with
// mtime testMTime, made by "zsyncmake -b 1024 -u data.bin -o ... data.bin".
const testdataZsync = "testdata/zsyncmake-100000-b1024.zsync"

var testMTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// lookZsyncmake returns the path of zsyncmake, as testtool.Look.
func lookZsyncmake(t *testing.T) string {
	t.Helper()
	return testtool.Look(t, "zsyncmake", "zsync")
}

// genData returns n deterministic bytes: pseudo-random when dense, else
// mostly zero with pseudo-random islands. It never starts with the gzip
// magic, which would make zsyncmake look inside.
func genData(n int, seed uint64, dense bool) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	if dense {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	} else {
		for i := 0; i < n; {
			run := min(n-i, 1+rng.IntN(3000))
			if rng.IntN(3) == 0 {
				for j := i; j < i+run; j++ {
					b[j] = byte(rng.Uint32())
				}
			}
			i += run
		}
	}
	if n >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		b[0] = 0
	}
	return b
}

// runZsyncmake writes data to dir/name with mtime testMTime and returns
// the control file zsyncmake makes for it.
func runZsyncmake(t *testing.T, prog, dir, name string, data []byte, args ...string) []byte {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, testMTime, testMTime); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".zsync")
	cmd := exec.Command(prog, append(append(args, "-o", out), name)...)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zsyncmake %v: %v\n%s", args, err, msg)
	}
	z, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// rsum computes zsync's rolling checksum a<<16|b of a full block.
func rsum(block []byte) uint32 {
	var a, b uint16
	n := len(block)
	for i, d := range block {
		a += uint16(d)
		b += uint16(n-i) * uint16(d)
	}
	return uint32(a)<<16 | uint32(b)
}

// checkRecords verifies every record of f against data.
func checkRecords(t *testing.T, f *File, data []byte) {
	t.Helper()
	bs := f.Blocksize
	block := make([]byte, bs)
	mask := RsumMask(f.HashLengths.RsumBytes)
	for i := 0; i < f.Checksums.Len(); i++ {
		clear(block)
		copy(block, data[i*bs:min(len(data), (i+1)*bs)])
		if got, want := f.Checksums.Rsum[i], rsum(block)&mask; got != want {
			t.Fatalf("block %d: rsum %#x, want %#x", i, got, want)
		}
		h := strong.MD4.New()
		h.Write(block)
		if got, want := f.Checksums.StrongOf(i), h.Sum(nil)[:f.HashLengths.StrongBytes]; !bytes.Equal(got, want) {
			t.Fatalf("block %d: strong % x, want % x", i, got, want)
		}
	}
}

func TestZsyncmakeInterop(t *testing.T) {
	prog := lookZsyncmake(t)
	dir := t.TempDir()
	sizes := []struct {
		n     int
		dense bool
	}{{0, true}, {1, true}, {2047, true}, {2048, true}, {2049, true}, {1 << 20, true}, {10_000_000, false}}
	for _, sz := range sizes {
		data := genData(sz.n, uint64(sz.n), sz.dense)
		for _, bs := range []int{0, 1024, 2048, 4096} {
			t.Run(strconv.Itoa(sz.n)+"/b"+strconv.Itoa(bs), func(t *testing.T) {
				name := "f" + strconv.Itoa(sz.n) + ".bin"
				var args []string
				wantBS := DefaultBlocksize(int64(sz.n))
				if bs != 0 {
					args = append(args, "-b", strconv.Itoa(bs))
					wantBS = bs
				}
				args = append(args, "-u", "http://example.test/"+name)
				z := runZsyncmake(t, prog, dir, name, data, args...)
				f, err := Read(bytes.NewReader(z))
				if err != nil {
					t.Fatalf("Read: %v\n%s", err, headerOf(z))
				}
				sum := sha1.Sum(data)
				if f.Blocksize != wantBS || f.Length != int64(sz.n) || f.Filename != name ||
					!f.MTime.Equal(testMTime) || len(f.URLs) != 1 || f.URLs[0] != "http://example.test/"+name ||
					!bytes.Equal(f.SHA1, sum[:]) || f.StrongAlgorithm != strong.MD4 || !f.Legacy() || f.Version != "0.6.2" {
					t.Errorf("header %+v", f.Header)
				}
				if int64(f.Checksums.Len()) != f.Blocks() {
					t.Errorf("%d records, Blocks() = %d", f.Checksums.Len(), f.Blocks())
				}
				if want := DefaultHashLengths(int64(sz.n), wantBS); f.HashLengths != want {
					t.Errorf("zsyncmake chose %v, DefaultHashLengths says %v", f.HashLengths, want)
				}
				checkRecords(t, f, data)
				var out bytes.Buffer
				if err := Write(&out, f); err != nil {
					t.Fatalf("Write: %v", err)
				}
				if !bytes.Equal(out.Bytes(), z) {
					t.Fatalf("Write(Read(x)) differs from zsyncmake:\n%s\n---\n%s", headerOf(out.Bytes()), headerOf(z))
				}
			})
		}
	}
}

// TestZsyncmakeWorkedExample checks the reference document's worked example.
func TestZsyncmakeWorkedExample(t *testing.T) {
	prog := lookZsyncmake(t)
	data := genData(1<<20, 42, true)
	z := runZsyncmake(t, prog, t.TempDir(), "rand1m.bin", data, "-u", "http://127.0.0.1:8000/rand1m.bin")
	hdr := headerOf(z)
	if len(hdr) != 212 {
		t.Errorf("header is %d bytes, want 212:\n%s", len(hdr), hdr)
	}
	f, err := Read(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	if f.Blocksize != 2048 || f.HashLengths != (HashLengths{2, 2, 4}) || f.Checksums.Len() != 512 ||
		len(z)-len(hdr) != 512*6 {
		t.Errorf("header %+v, %d records", f.Header, f.Checksums.Len())
	}
	// Rebuild the file from scratch, not from Read's result.
	g := &File{Header: Header{Version: "0.6.2", Filename: "rand1m.bin", MTime: testMTime, Blocksize: 2048,
		Length: 1 << 20, HashLengths: DefaultHashLengths(1<<20, 2048),
		URLs: []string{"http://127.0.0.1:8000/rand1m.bin"}, StrongAlgorithm: strong.MD4}}
	sum := sha1.Sum(data)
	g.SHA1 = sum[:]
	g.Checksums = Checksums{RsumBytes: 2, StrongBytes: 4}
	for i := 0; i < 512; i++ {
		block := data[i*2048 : (i+1)*2048]
		g.Checksums.Rsum = append(g.Checksums.Rsum, rsum(block)&RsumMask(2))
		h := strong.MD4.New()
		h.Write(block)
		g.Checksums.Strong = append(g.Checksums.Strong, h.Sum(nil)[:4]...)
	}
	var out bytes.Buffer
	if err := Write(&out, g); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), z) {
		t.Fatalf("independently built file differs from zsyncmake's:\n%s\n---\n%s", headerOf(out.Bytes()), hdr)
	}
}

// TestTestdata checks the committed zsyncmake file, regenerating it with
// -update.
func TestTestdata(t *testing.T) {
	data := genData(100000, 7, true)
	if *update {
		prog := lookZsyncmake(t)
		z := runZsyncmake(t, prog, t.TempDir(), "data.bin", data, "-b", "1024", "-u", "data.bin")
		if err := os.WriteFile(testdataZsync, z, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	z, err := os.ReadFile(testdataZsync)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	if f.Checksums.Len() != 98 || f.HashLengths != DefaultHashLengths(100000, 1024) {
		t.Errorf("header %+v", f.Header)
	}
	checkRecords(t, f, data)
	var out bytes.Buffer
	if err := Write(&out, f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), z) {
		t.Errorf("Write(Read(testdata)) differs")
	}
}

// TestZsync062ReadsSpecFiles checks against the real zsync 0.6.2 client
// that a file with MD4 blocks plus a SHA-256 File-Hash is accepted (Safe
// works) and that one with MD5 blocks is refused rather than misread.
func TestZsync062ReadsSpecFiles(t *testing.T) {
	prog := lookZsyncmake(t)
	client := testtool.Look(t, "zsync", "zsync")
	dir := t.TempDir()
	data := genData(300000, 5, true)
	z := runZsyncmake(t, prog, dir, "seed.bin", data, "-u", "http://127.0.0.1:1/seed.bin")
	f, err := Read(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	f.SHA256, f.Version = s[:], ""
	for _, alg := range []strong.Algorithm{strong.MD4, strong.MD5} {
		f.StrongAlgorithm = alg
		var b bytes.Buffer
		if err := Write(&b, f); err != nil {
			t.Fatal(err)
		}
		zpath := filepath.Join(dir, alg.String()+".zsync")
		if err := os.WriteFile(zpath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out := "out-" + alg.String()
		cmd := exec.Command(client, "-q", "-i", "seed.bin", "-o", out, zpath)
		cmd.Dir = dir
		msg, err := cmd.CombinedOutput()
		if alg == strong.MD4 {
			got, rerr := os.ReadFile(filepath.Join(dir, out))
			if err != nil || rerr != nil || !bytes.Equal(got, data) {
				t.Errorf("zsync 0.6.2 on an MD4 + File-Hash file: %v %v\n%s", err, rerr, msg)
			}
			continue
		}
		if err == nil || !bytes.Contains(msg, []byte("Strong-Hash-Algorithm")) {
			t.Errorf("zsync 0.6.2 did not refuse an MD5 file: %v\n%s", err, msg)
		}
	}
}
