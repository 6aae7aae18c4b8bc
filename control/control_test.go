package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

// testFile returns a File with pseudo-random records for the given header.
func testFile(t testing.TB, h Header, seed uint64) *File {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	n := int(h.Blocks())
	c := Checksums{RsumBytes: h.HashLengths.RsumBytes, StrongBytes: h.HashLengths.StrongBytes}
	if n > 0 {
		c.Rsum = make([]uint32, n)
		c.Strong = make([]byte, n*c.StrongBytes)
	}
	mask := RsumMask(c.RsumBytes)
	for i := range c.Rsum {
		c.Rsum[i] = rng.Uint32() & mask
	}
	for i := range c.Strong {
		c.Strong[i] = byte(rng.Uint32())
	}
	return &File{Header: h, Checksums: c}
}

func mustWrite(t testing.TB, f *File) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, f); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes()
}

// normalized returns f as Read(Write(f)) should return it: the written
// version and Safe list filled in, empty slices as nil.
func normalized(f *File) *File {
	g := *f
	if g.Version == "" {
		g.Version = SpecVersion
		if g.Legacy() {
			g.Version = LegacyVersion
		}
	}
	g.Safe = f.safeList()
	if len(g.Safe) == 0 {
		g.Safe = nil
	}
	if len(g.URLs) == 0 {
		g.URLs = nil
	}
	if len(g.Extra) == 0 {
		g.Extra = nil
	}
	if len(g.Checksums.Rsum) == 0 {
		g.Checksums.Rsum = nil
		g.Checksums.Strong = nil
	}
	if !g.MTime.IsZero() {
		g.MTime = g.MTime.UTC().Truncate(time.Second)
	}
	return &g
}

func sha(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestRoundTrip(t *testing.T) {
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		h      Header
		legacy bool
	}{
		{"legacy-2-2-4", Header{Version: "0.6.2", Filename: "rand1m.bin", MTime: mtime, Blocksize: 2048, Length: 1 << 20,
			HashLengths: HashLengths{2, 2, 4}, URLs: []string{"http://127.0.0.1:8000/rand1m.bin"},
			StrongAlgorithm: strong.MD4, SHA1: sha(20, 0xab)}, true},
		{"legacy-defaults-1-4-16-short-last-block", Header{Version: "0.6.2", Blocksize: 1024, Length: 5000,
			HashLengths: HashLengths{1, 4, 16}, StrongAlgorithm: strong.MD4, SHA1: sha(20, 1)}, true},
		{"legacy-1-3-3-multi-url-extra", Header{Version: "0.6.2", Filename: "x.tar", Blocksize: 4096, Length: 4096*3 + 1,
			HashLengths: HashLengths{1, 3, 3}, URLs: []string{"a", "http://b/c d"}, StrongAlgorithm: strong.MD4,
			SHA1: sha(20, 2), Safe: []string{"X-Custom"},
			Extra: []Field{{"Z-URL", "x.tar.gz"}, {"X-Custom", "hello: world"}}}, true},
		{"legacy-rsum1", Header{Version: "0.6.2", Blocksize: 512, Length: 10000,
			HashLengths: HashLengths{2, 1, 8}, StrongAlgorithm: strong.MD4}, true},
		{"legacy-empty", Header{Version: "0.6.2", Filename: "empty", Blocksize: 2048, Length: 0,
			HashLengths: HashLengths{1, 2, 3}, URLs: []string{"empty"}, StrongAlgorithm: strong.MD4, SHA1: sha(20, 3)}, true},
		{"spec-md5-2-3-6", Header{Version: "0.7.2", Filename: "f", MTime: mtime.Add(90 * time.Minute), Blocksize: 2048,
			Length: 100000, HashLengths: HashLengths{2, 3, 6}, URLs: []string{"f"}, StrongAlgorithm: strong.MD5,
			SHA1: sha(20, 4), SHA256: sha(32, 5)}, false},
		{"spec-sha224-1-4-28", Header{Blocksize: 8192, Length: 8192 * 7, HashLengths: HashLengths{1, 4, 28},
			StrongAlgorithm: strong.SHA224, SHA256: sha(32, 6), Safe: []string{"File-Hash"}}, false},
		{"spec-md4-with-sha256", Header{Version: "0.7.2", MinVersion: "0.7.0", Blocksize: 1 << 20, Length: 3 << 20,
			HashLengths: HashLengths{2, 2, 16}, StrongAlgorithm: strong.MD4, SHA1: sha(20, 7), SHA256: sha(32, 8),
			Extra: []Field{{"File-Hash", "SHA-512:abcd"}}}, false},
		{"no-version-legacy", Header{Blocksize: 1, Length: 17, HashLengths: HashLengths{2, 4, 3}, StrongAlgorithm: strong.MD4}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFile(t, tc.h, uint64(i))
			if got := f.Legacy(); got != tc.legacy {
				t.Errorf("Legacy() = %v, want %v", got, tc.legacy)
			}
			data := mustWrite(t, f)
			g, err := Read(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("Read: %v\n%s", err, headerOf(data))
			}
			if want := normalized(f); !reflect.DeepEqual(g, want) {
				t.Fatalf("round trip differs:\n got %+v\nwant %+v", g.Header, want.Header)
			}
			// A reader that does not say its length, read a byte at a
			// time, gets the same (Read sizes its buffer otherwise).
			if g2, err := Read(iotest.OneByteReader(bytes.NewReader(data))); err != nil || !reflect.DeepEqual(g2, g) {
				t.Fatalf("Read of a reader without Len: %v, differs: %v", err, !reflect.DeepEqual(g2, g))
			}
			if again := mustWrite(t, g); !bytes.Equal(again, data) {
				t.Fatalf("second Write differs:\n%s\n---\n%s", headerOf(again), headerOf(data))
			}
			hdr := string(headerOf(data))
			wantRecs := int(f.Blocks()) * (tc.h.HashLengths.RsumBytes + tc.h.HashLengths.StrongBytes)
			if len(data)-len(hdr) != wantRecs {
				t.Errorf("record bytes = %d, want %d", len(data)-len(hdr), wantRecs)
			}
			if tc.legacy && strings.Contains(hdr, "Strong-Hash-Algorithm") {
				t.Errorf("legacy file has Strong-Hash-Algorithm:\n%s", hdr)
			}
			if tc.h.StrongAlgorithm != strong.MD4 && !strings.Contains(hdr, "\nStrong-Hash-Algorithm: "+tc.h.StrongAlgorithm.String()+"\n") {
				t.Errorf("no Strong-Hash-Algorithm line:\n%s", hdr)
			}
			if tc.h.SHA256 != nil {
				if !strings.Contains(hdr, "\nFile-Hash: SHA-256:") {
					t.Errorf("no File-Hash line:\n%s", hdr)
				}
				safeAt := strings.Index(hdr, "\nSafe: ")
				if safeAt < 0 || safeAt > strings.Index(hdr, "\nFile-Hash: ") || !strings.Contains(hdr[safeAt:], "File-Hash\n") {
					t.Errorf("File-Hash not listed in a Safe line before it:\n%s", hdr)
				}
			}
			if strings.Contains(hdr, "Safe: ") && strings.Contains(hdr[strings.Index(hdr, "Safe: "):], "Strong-Hash-Algorithm\n") {
				t.Errorf("Strong-Hash-Algorithm listed as safe:\n%s", hdr)
			}
		})
	}
}

// headerOf returns the header of a control file, including the empty line.
func headerOf(data []byte) []byte {
	if i := bytes.Index(data, []byte("\n\n")); i >= 0 {
		return data[:i+2]
	}
	return data
}

func TestWriteLegacyExactBytes(t *testing.T) {
	f := testFile(t, Header{Version: "0.6.2", Filename: "rand1m.bin",
		MTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600)), Blocksize: 2048, Length: 1 << 20,
		HashLengths: HashLengths{2, 2, 4}, URLs: []string{"http://127.0.0.1:8000/rand1m.bin"},
		StrongAlgorithm: strong.MD4, SHA1: sha(20, 0xe5)}, 1)
	f.Checksums.Rsum[0] = 0x14de
	copy(f.Checksums.Strong, []byte{0x2d, 0x06, 0x7d, 0xd5})
	data := mustWrite(t, f)
	want := "zsync: 0.6.2\nFilename: rand1m.bin\nMTime: Sun, 31 Dec 2023 23:00:00 +0000\nBlocksize: 2048\n" +
		"Length: 1048576\nHash-Lengths: 2,2,4\nURL: http://127.0.0.1:8000/rand1m.bin\n" +
		"SHA-1: " + strings.Repeat("e5", 20) + "\n\n"
	if got := string(headerOf(data)); got != want {
		t.Fatalf("header:\n%s\nwant:\n%s", got, want)
	}
	if got := data[len(want) : len(want)+6]; !bytes.Equal(got, []byte{0x14, 0xde, 0x2d, 0x06, 0x7d, 0xd5}) {
		t.Errorf("first record = % x", got)
	}
}

func TestRsumRecordBytes(t *testing.T) {
	// The record keeps the trailing bytes of big-endian a, b.
	for rb, want := range map[int][]byte{1: {0xde}, 2: {0x14, 0xde}, 3: {0x03, 0x14, 0xde}, 4: {0xf0, 0x03, 0x14, 0xde}} {
		h := Header{Version: "0.6.2", Blocksize: 16, Length: 16, HashLengths: HashLengths{1, rb, 3}, StrongAlgorithm: strong.MD4}
		f := &File{Header: h, Checksums: Checksums{RsumBytes: rb, StrongBytes: 3,
			Rsum: []uint32{0xf00314de & RsumMask(rb)}, Strong: []byte{1, 2, 3}}}
		data := mustWrite(t, f)
		rec := data[len(headerOf(data)):]
		if !bytes.Equal(rec, append(want, 1, 2, 3)) {
			t.Errorf("rsum_bytes %d: record % x, want % x 01 02 03", rb, rec, want)
		}
		g, err := Read(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if g.Checksums.Rsum[0] != 0xf00314de&RsumMask(rb) {
			t.Errorf("rsum_bytes %d: read %#x", rb, g.Checksums.Rsum[0])
		}
	}
}

const goodHeader = "zsync: 0.6.2\nFilename: f\nMTime: Mon, 01 Jan 2024 00:00:00 +0000\nBlocksize: 2048\nLength: 1\n" +
	"Hash-Lengths: 1,2,3\nURL: f\nSHA-1: 0123456789abcdef0123456789abcdef01234567\n\n"

func TestReadMalformed(t *testing.T) {
	rec := "\x01\x02\x03\x04\x05"
	cases := []struct {
		name, in string
		line     int
		field    string
		msg      string
	}{
		{"empty", "", 1, "", "empty input"},
		{"not zsync", "Hello: world\n\n", 1, "Hello", "not a zsync control file"},
		{"no separator", "zsync: 0.6.2\nBlocksize 2048\n\n", 2, "", "not a header line"},
		{"colon without space", "zsync: 0.6.2\nBlocksize:2048\n\n", 2, "", "not a header line"},
		{"empty value", "zsync: 0.6.2\nURL: \n\n", 2, "", "not a header line"},
		{"crlf blank", "zsync: 0.6.2\r\nBlocksize: 2048\r\nLength: 1\r\n\r\n", 4, "", "bare LF"},
		{"bs not pow2", "zsync: 0.6.2\nLength: 5\nBlocksize: 3000\n\n", 3, "Blocksize", "not a power of two: 3000"},
		{"bs zero", "zsync: 0.6.2\nBlocksize: 0\n\n", 2, "Blocksize", "out of range"},
		{"bs huge", "zsync: 0.6.2\nBlocksize: 2147483648\n\n", 2, "Blocksize", "out of range"},
		{"bs negative", "zsync: 0.6.2\nBlocksize: -2048\n\n", 2, "Blocksize", "not a non-negative decimal"},
		{"length junk", "zsync: 0.6.2\nBlocksize: 2048\nLength: 12a\n\n", 3, "Length", "not a non-negative decimal"},
		{"length overflow", "zsync: 0.6.2\nBlocksize: 2048\nLength: 99999999999999999999\n\n", 3, "Length", "out of range"},
		{"no length", "zsync: 0.6.2\nBlocksize: 2048\n\n", 3, "Length", "required header missing"},
		{"no blocksize", "zsync: 0.6.2\nLength: 2048\n\n", 3, "Blocksize", "required header missing"},
		{"dup length", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nLength: 2\n\n", 4, "Length", "duplicate header (first on line 2)"},
		{"hash lengths form", "zsync: 0.6.2\nHash-Lengths: 2,2\n\n", 2, "Hash-Lengths", "want seq_matches"},
		{"seq 3", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nHash-Lengths: 3,2,4\n\n", 4, "Hash-Lengths", "seq_matches 3"},
		{"rsum 5", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nHash-Lengths: 2,5,4\n\n", 4, "Hash-Lengths", "rsum_bytes 5"},
		{"strong 2", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nHash-Lengths: 2,2,2\n\n", 4, "Hash-Lengths", "strong_bytes 2"},
		{"strong 17 md4", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nHash-Lengths: 2,2,17\n\n", 4, "Hash-Lengths", "strong_bytes 17 out of range 3..16 for MD4"},
		{"strong 29 sha224", "zsync: 0.7.2\nHash-Lengths: 2,2,29\nLength: 1\nBlocksize: 2048\nStrong-Hash-Algorithm: SHA-224\n\n", 2, "Hash-Lengths", "3..28 for SHA-224"},
		{"bad algorithm", "zsync: 0.7.2\nStrong-Hash-Algorithm: SHA-1\n\n", 2, "Strong-Hash-Algorithm", "unknown strong hash"},
		{"sha1 short", "zsync: 0.6.2\nSHA-1: abcd\n\n", 2, "SHA-1", "want 40 hex digits"},
		{"sha1 not hex", "zsync: 0.6.2\nSHA-1: " + strings.Repeat("zz", 20) + "\n\n", 2, "SHA-1", "bad hex"},
		{"sha256 short", "zsync: 0.7.2\nFile-Hash: SHA-256:abcd\n\n", 2, "File-Hash", "want 64 hex digits"},
		{"dup sha256", "zsync: 0.7.2\nFile-Hash: SHA-256:" + strings.Repeat("00", 32) + "\nFile-Hash: sha-256:" + strings.Repeat("00", 32) + "\n\n", 3, "File-Hash", "duplicate"},
		{"mtime", "zsync: 0.6.2\nMTime: 2024-01-01T00:00:00Z\n\n", 2, "MTime", "not an RFC 1123 date"},
		{"chain form", "zsync: 0.7.2\nHash-Chain: SHA-256:4096\n\n", 2, "Hash-Chain", "want SHA-256:SPAN:STATE"},
		{"chain hex", "zsync: 0.7.2\nHash-Chain: SHA-256:4096:abcd\n\n", 2, "Hash-Chain", "state 0: want 64 hex digits"},
		{"chain count", "zsync: 0.7.2\nLength: 10000\nBlocksize: 2048\nFile-Hash: SHA-256:" + strings.Repeat("00", 32) + "\nHash-Chain: SHA-256:4096:" + strings.Repeat("00", 32) + "\n\n", 0, "Hash-Chain", "1 states for 3 spans"},
		{"chain span", "zsync: 0.7.2\nLength: 10000\nBlocksize: 4096\nFile-Hash: SHA-256:" + strings.Repeat("00", 32) + "\nHash-Chain: SHA-256:6144:" + strings.Repeat("00", 32) + "\n\n", 0, "Hash-Chain", "not a multiple of the block size"},
		{"chain no file hash", "zsync: 0.7.2\nLength: 8192\nBlocksize: 4096\nHash-Chain: SHA-256:4096:" + strings.Repeat("00", 32) + "\n\n", 0, "Hash-Chain", "needs a SHA-256 File-Hash"},
		{"filename slash", "zsync: 0.6.2\nFilename: ../etc/passwd\n\n", 2, "Filename", "not a plain file name"},
		{"filename dotdot", "zsync: 0.6.2\nFilename: ..\n\n", 2, "Filename", "not a plain file name"},
		{"unknown header", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nX-Foo: bar\n\n", 4, "X-Foo", "not listed in Safe"},
		{"case matters", "zsync: 0.6.2\nlength: 1\n\n", 2, "length", "not listed in Safe"},
		{"strong alg safe", "zsync: 0.7.2\nSafe: Strong-Hash-Algorithm\nLength: 1\nBlocksize: 2048\nStrong-Hash-Algorithm: MD5\n\n", 2, "Safe", "zsync 0.6.2 would read the records as MD4"},
		{"version late", "zsync: 0.6.2\nLength: 1\nzsync: 0.6.2\n\n", 3, "zsync", "duplicate"},
		{"version 0.0.4", "zsync: 0.0.4\n\n", 1, "zsync", "0.0.4"},
		{"zmap huge", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nZ-Map2: 99999999999\n\n", 4, "Z-Map2", "too many entries"},
		{"zmap truncated", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\nZ-Map2: 3\nabcd\n", 4, "Z-Map2", "truncated: got 5 of 12 map bytes"},
		{"nul", "zsync: 0.6.2\nURL: a\x00b\n\n", 2, "", "NUL"},
		{"long line", "zsync: 0.6.2\nURL: " + strings.Repeat("u", MaxLineLength) + "\n\n", 2, "", "line longer than 8192"},
		{"header unterminated", "zsync: 0.6.2\nLength: 1\nBlocksize: 2048\n", 4, "", "truncated: input ends inside the header"},
		{"no records", goodHeader, 0, "", "truncated: got 0 of 1 block records"},
		{"partial record", goodHeader + rec[:3], 0, "", "truncated: got 0 of 1 block records"},
		{"trailing", goodHeader + rec + "x", 0, "", "trailing data after the 1 block records"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Read(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("Read accepted it: %+v", f.Header)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FormatError", err, err)
			}
			if fe.Line != tc.line || fe.Name != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q: line %d field %q; want line %d field %q containing %q",
					err, fe.Line, fe.Name, tc.line, tc.field, tc.msg)
			}
			if strings.Contains(tc.msg, "truncated") && !errors.Is(err, ErrTruncated) {
				t.Errorf("error %v does not wrap ErrTruncated", err)
			}
		})
	}
}

func TestReadAccepts(t *testing.T) {
	rec := "\x01\x02\x03\x04\x05"
	cases := []struct {
		name, in string
		check    func(*File) error
	}{
		{"good", goodHeader + rec, func(f *File) error {
			if f.Filename != "f" || f.Length != 1 || f.Blocksize != 2048 || len(f.URLs) != 1 || f.SHA1[0] != 0x01 ||
				!f.MTime.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) || !f.Legacy() {
				return fmt.Errorf("bad header %+v", f.Header)
			}
			if f.Checksums.Rsum[0] != 0x0102 || !bytes.Equal(f.Checksums.StrongOf(0), []byte{3, 4, 5}) {
				return fmt.Errorf("bad records %+v", f.Checksums)
			}
			return nil
		}},
		{"safe comma-separated (zsync 0.7.x)", "zsync: 0.7.2\nSafe: X-Bar,X-Foo\nBlocksize: 1024\nLength: 0\nX-Foo: bar\nX-Bar: baz\n\n", func(f *File) error {
			if len(f.Safe) != 2 || f.Safe[0] != "X-Bar" || f.Safe[1] != "X-Foo" || len(f.Extra) != 2 {
				return fmt.Errorf("bad header %+v", f.Header)
			}
			return nil
		}},
		{"trailing spaces and CR stripped", "zsync: 0.6.2 \r\nBlocksize: 1024\r\nLength: 0  \n\n", func(f *File) error {
			if f.Blocksize != 1024 || f.Length != 0 || f.Version != "0.6.2" {
				return fmt.Errorf("bad header %+v", f.Header)
			}
			if f.HashLengths != (HashLengths{1, 4, 16}) || f.StrongAlgorithm != strong.MD4 {
				return fmt.Errorf("defaults not applied: %+v", f.Header)
			}
			return nil
		}},
		{"safe unknown and z headers", "zsync: 0.6.2\nSafe: Z-Filename Recompress MTime:\nZ-Filename: a.gz\n" +
			"Blocksize: 1024\nLength: 0\nZ-URL: a.gz\nRecompress: 1f8b gz --best\nMTim: 1\nZ-Map2: 2\n12345678\n", func(f *File) error {
			want := []Field{{"Z-Filename", "a.gz"}, {"Z-URL", "a.gz"}, {"Recompress", "1f8b gz --best"}, {"MTim", "1"}}
			if !reflect.DeepEqual(f.Extra, want) {
				return fmt.Errorf("Extra = %q", f.Extra)
			}
			return nil
		}},
		{"spec 0.8", "zsync: 0.7.2\nSafe: File-Hash\nBlocksize: 1024\nLength: 0\nHash-Lengths: 2,2,20\n" +
			"Strong-Hash-Algorithm: sha224\nFile-Hash: SHA-256:" + strings.Repeat("Ab", 32) + "\nFile-Hash: BLAKE3:00\n\n", func(f *File) error {
			if f.StrongAlgorithm != strong.SHA224 || f.SHA256[31] != 0xab || f.Legacy() ||
				!reflect.DeepEqual(f.Extra, []Field{{"File-Hash", "BLAKE3:00"}}) {
				return fmt.Errorf("bad header %+v", f.Header)
			}
			return nil
		}},
		{"mtime without weekday, other zone", "zsync: 0.6.2\nMTime: 02 Jan 2024 01:00:00 +0100\nBlocksize: 1\nLength: 0\n\n", func(f *File) error {
			if want := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC); f.MTime != want {
				return fmt.Errorf("MTime = %v, want %v", f.MTime, want)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Read(strings.NewReader(tc.in))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if err := tc.check(f); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestReadHeaderLeavesRecords(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader(goodHeader+"\x01\x02\x03\x04\x05"), 16)
	h, err := ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "\x01\x02\x03\x04\x05" || h.Blocks() != 1 {
		t.Errorf("after header: %q, blocks %d", rest, h.Blocks())
	}
}

func TestHugeLengthDoesNotAllocate(t *testing.T) {
	// Just within MaxSize (a larger claim is refused before reading
	// records, see TestReadLimits).
	const length = 10_000_000
	in := "zsync: 0.6.2\nBlocksize: 1\nLength: 10000000\nHash-Lengths: 2,4,16\n\n" +
		strings.Repeat("r", 3*20+7)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Read(strings.NewReader(in))
	runtime.ReadMemStats(&after)
	if err == nil || !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), fmt.Sprintf("got 3 of %d block records", int64(length))) {
		t.Fatalf("err = %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("reading a truncated 10^7-block file allocated %d bytes", n)
	}
}

func TestBlocksNoOverflow(t *testing.T) {
	h := Header{Blocksize: 4, Length: 1<<63 - 1}
	if got := h.Blocks(); got != 1<<61 {
		t.Errorf("Blocks() = %d", got)
	}
	h = Header{Blocksize: 4096, Length: 4097}
	if got := h.Blocks(); got != 2 {
		t.Errorf("Blocks() = %d", got)
	}
}

func TestDefaultHashLengths(t *testing.T) {
	cases := []struct {
		length int64
		bs     int
		want   HashLengths
	}{
		// Observed with zsyncmake 0.6.2 (reference doc and this package's checks).
		{1 << 20, 2048, HashLengths{2, 2, 4}},
		{10_000_000, 2048, HashLengths{2, 2, 5}},
		{99_999_999, 2048, HashLengths{2, 2, 5}},
		{100_000_000, 4096, HashLengths{2, 2, 5}},
		{220_000_000, 4096, HashLengths{2, 2, 5}},
		{500_000_000, 4096, HashLengths{2, 3, 5}},
		{1 << 30, 4096, HashLengths{2, 3, 5}},
		{0, 2048, HashLengths{1, 2, 3}},
		{1, 2048, HashLengths{1, 2, 3}},
		{2048, 2048, HashLengths{1, 2, 4}},
		{2049, 2048, HashLengths{2, 2, 3}},
		{16, 2048, HashLengths{1, 2, 3}},
		{4096, 8192, HashLengths{1, 3, 4}},
	}
	for _, tc := range cases {
		if got := DefaultHashLengths(tc.length, tc.bs); got != tc.want {
			t.Errorf("DefaultHashLengths(%d, %d) = %v, want %v", tc.length, tc.bs, got, tc.want)
		}
	}
	// Odd inputs must not panic and must give something writable.
	for _, l := range []int64{-1, 1<<63 - 1} {
		for _, bs := range []int{-5, 0, 1, 1 << 30} {
			hl := DefaultHashLengths(l, bs)
			if err := checkHashLengths(hl, strong.MD4); err != nil {
				t.Errorf("DefaultHashLengths(%d, %d) = %v: %v", l, bs, hl, err)
			}
		}
	}
	if DefaultBlocksize(99_999_999) != 2048 || DefaultBlocksize(100_000_000) != 4096 {
		t.Error("DefaultBlocksize threshold")
	}
}

func TestWriteRejects(t *testing.T) {
	base := func() *File {
		return testFile(t, Header{Version: "0.6.2", Blocksize: 1024, Length: 3000,
			HashLengths: HashLengths{2, 2, 4}, StrongAlgorithm: strong.MD4}, 9)
	}
	cases := []struct {
		name  string
		mod   func(f *File)
		field string
		msg   string
	}{
		{"bs", func(f *File) { f.Blocksize = 3000 }, "Blocksize", "not a power of two: 3000"},
		{"length", func(f *File) { f.Length = -1 }, "Length", "negative"},
		{"no alg", func(f *File) { f.StrongAlgorithm = 0 }, "Hash-Lengths", "unknown strong hash"},
		{"strong", func(f *File) { f.HashLengths.StrongBytes = 17; f.Checksums.StrongBytes = 17 }, "Hash-Lengths", "strong_bytes 17"},
		{"filename", func(f *File) { f.Filename = "a/b" }, "Filename", "not a plain file name"},
		{"url newline", func(f *File) { f.URLs = []string{"a\nSHA-1: x"} }, "URL", "LF"},
		{"url trailing space", func(f *File) { f.URLs = []string{"a "} }, "URL", "ends in a space"},
		{"url empty", func(f *File) { f.URLs = []string{""} }, "URL", "empty value"},
		{"sha1", func(f *File) { f.SHA1 = []byte{1} }, "SHA-1", "want 20 bytes"},
		{"sha256", func(f *File) { f.SHA256 = []byte{1} }, "File-Hash", "want 32 bytes"},
		{"extra interpreted", func(f *File) { f.Extra = []Field{{"Length", "5"}} }, "Length", "dedicated Header field"},
		{"extra unknown", func(f *File) { f.Extra = []Field{{"X-Foo", "5"}} }, "X-Foo", "not listed in Safe"},
		{"extra colon", func(f *File) { f.Extra = []Field{{"X:Foo", "5"}} }, "X:Foo", "contains ':'"},
		{"extra sha256", func(f *File) { f.Extra = []Field{{"File-Hash", "SHA-256:00"}} }, "File-Hash", "belongs in Header.SHA256"},
		{"safe strong", func(f *File) {
			f.StrongAlgorithm = strong.MD5
			f.Safe = []string{"Strong-Hash-Algorithm"}
		}, "Safe", "would read the records as MD4"},
		{"safe space", func(f *File) { f.Safe = []string{"a b"} }, "Safe", "not a single header name"},
		{"safe comma", func(f *File) { f.Safe = []string{"a,"} }, "Safe", "not a single header name"},
		{"extra chain", func(f *File) { f.Extra = []Field{{"Hash-Chain", "SHA-256:00"}} }, "Hash-Chain", "belongs in Header.SHA256Chain"},
		{"mtime year", func(f *File) { f.MTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "MTime", "year 10000"},
		{"records count", func(f *File) { f.Checksums.Rsum = f.Checksums.Rsum[:2] }, "Checksums", "have 2 block records"},
		{"records layout", func(f *File) { f.Checksums.RsumBytes = 3 }, "Checksums", "record layout 3,4"},
		{"rsum mask", func(f *File) { f.Checksums.Rsum[1] = 0x10000 }, "Checksums", "block 1: rolling checksum 0x10000"},
		{"strong len", func(f *File) { f.Checksums.Strong = f.Checksums.Strong[:5] }, "Checksums", "strong hash bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.mod(f)
			var b bytes.Buffer
			err := Write(&b, f)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Name != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Write error = %v; want field %q containing %q", err, tc.field, tc.msg)
			}
			if b.Len() != 0 {
				t.Errorf("Write wrote %d bytes of an invalid file", b.Len())
			}
		})
	}
	if err := Write(io.Discard, nil); err == nil {
		t.Error("Write(nil) succeeded")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	f := testFile(t, Header{Blocksize: 1024, Length: 3000, HashLengths: HashLengths{2, 2, 4}, StrongAlgorithm: strong.MD4}, 1)
	if err := Write(failWriter{}, f); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err = %v", err)
	}
}

func TestFormatErrorString(t *testing.T) {
	err := error(&FormatError{Line: 5, Name: "Blocksize", Err: errors.New("not a power of two: 3000")})
	if got, want := err.Error(), "control file: line 5: Blocksize: not a power of two: 3000"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	inner := errors.New("x")
	if !errors.Is(&FormatError{Err: inner}, inner) {
		t.Error("Unwrap")
	}
	if got := (&FormatError{Err: inner}).Error(); got != "control file: x" {
		t.Errorf("got %q", got)
	}
}

// TestReadBufSize checks that an input that says its length gets a buffer
// no larger than that, and any other bufio's default.
func TestReadBufSize(t *testing.T) {
	for _, tc := range []struct {
		r    io.Reader
		want int
	}{
		{bytes.NewReader(make([]byte, 405)), 405},
		{strings.NewReader("zsync: 0.6.2\n"), 13},
		{bytes.NewReader(make([]byte, 1<<20)), 4096},
		{iotest.OneByteReader(bytes.NewReader(make([]byte, 405))), 4096},
	} {
		if got := readBufSize(tc.r); got != tc.want {
			t.Errorf("readBufSize(%T) = %d, want %d", tc.r, got, tc.want)
		}
	}
}

// BenchmarkReadSmall reads a control file of the size most of a Go
// toolchain tree's have (a 40 KB file in 2 KiB blocks: about 400 bytes)
// from memory, as a mirror does a thousand times per run.
func BenchmarkReadSmall(b *testing.B) {
	h := Header{Version: "0.7.2", Filename: "f.go", Blocksize: 2048, Length: 40000,
		HashLengths: HashLengths{2, 3, 6}, URLs: []string{"f.go"}, StrongAlgorithm: strong.MD5, SHA256: sha(32, 9)}
	data := mustWrite(b, testFile(b, h, 1))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
