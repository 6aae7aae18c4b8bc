package v03

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestGoldenBlocks decodes the partitioned messages real sr3_post sent for
// testdata/file.bin (testdata/sr3-blocks.jsonl, see TestSR3Partitions):
// they validate, round-trip, describe the file's partitions, and their
// identities are what SR3IdentityRange says sr3 hashes.
func TestGoldenBlocks(t *testing.T) {
	data, err := os.ReadFile("testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	all := readGolden(t, "sr3-blocks.jsonl")
	if len(all) != 13 {
		t.Fatalf("%d golden messages, want 13", len(all))
	}
	for name, g := range all {
		m, err := Decode([]byte(g.Body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := m.Validate(Limits{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		// sr3 may write 10 digits of fraction of a second (atime
		// "20261202T010555.0339605808"); Go times keep 9.
		if !reflect.DeepEqual(withoutTimes(t, out), withoutTimes(t, []byte(g.Body))) {
			t.Errorf("%s: round trip changed the message\n got %s\nwant %s", name, out, g.Body)
		}
		b := m.Blocks
		if b == nil || b.Method != Inplace || b.FileSize() != int64(len(data)) || m.RelPath != "a/b/file.bin" {
			t.Fatalf("%s: %+v relPath %q", name, b, m.RelPath)
		}
		if want := fmt.Sprintf("-%d", b.Number); !strings.HasSuffix(name, want) {
			t.Errorf("%s: number %d", name, b.Number)
		}
		off, n := b.Range()
		if off != b.Number*b.Size || n != m.Size || off+n > int64(len(data)) {
			t.Errorf("%s: range %d+%d, size %d", name, off, n, m.Size)
		}
		bufSize := int64(0)
		if _, after, found := strings.Cut(name, "-buf"); found {
			fmt.Sscanf(after, "%d", &bufSize)
		}
		for i, p := range b.Manifest {
			o, l := b.SR3IdentityRange(int64(i), bufSize)
			id, err := Sum(m.Identity.Method, bytes.NewReader(data[o:o+l]))
			if err != nil {
				t.Fatal(err)
			}
			if id.Value != p.Identity {
				t.Errorf("%s: partition %d: sr3 identity is not of bytes %d+%d", name, i, o, l)
			}
			exact, _ := Sum(m.Identity.Method, bytes.NewReader(data[int64(i)*b.Size:int64(i)*b.Size+p.Size]))
			if (l == p.Size) != (exact.Value == p.Identity) {
				t.Errorf("%s: partition %d: identity of the partition alone: %v, SR3IdentityRange %d+%d", name, i, exact.Value == p.Identity, o, l)
			}
		}
	}
}

func TestSR3IdentityRange(t *testing.T) {
	b := &Blocks{Method: Inplace, Size: 4 << 20, Manifest: []Partition{{Size: 4 << 20}, {Size: 4 << 20}, {Size: 4 << 20}, {Size: 1}}}
	for _, c := range []struct{ i, buf, off, n int64 }{
		{0, 0, 0, 4 << 20},                // bufSize divides the partition: exact
		{1, 0, 4 << 20, 8 << 20},          // reads offset+length bytes from offset
		{2, 0, 8 << 20, 4<<20 + 1},        // clipped at the end of the file
		{3, 0, 12 << 20, 1},               // the last partition is exact
		{0, 3 << 20, 0, 6 << 20},          // rounded up to bufSize
		{4, 0, 0, 0},                      // no such partition
		{-1, 0, 0, 0},                     // no such partition
		{1, 1 << 30, 4 << 20, 8<<20 + 1},  // one read to the end
		{0, 1 << 30, 0, 12<<20 + 1},       // one read to the end
		{3, 1 << 30, 12 << 20, 1},         // the last partition
		{2, 5 << 20, 8 << 20, 4<<20 + 1},  // clipped
		{1, 5 << 20, 4 << 20, 8<<20 + 1},  // 10 MiB read in 5 MiB reads, clipped
		{1, 1, 4 << 20, 8 << 20},          // byte by byte: offset+length
		{0, 1, 0, 4 << 20},                // exact
		{3, 1, 12 << 20, 1},               // exact
		{2, 1, 8 << 20, 4<<20 + 1},        // clipped
		{2, 2 << 20, 8 << 20, 4<<20 + 1},  // clipped
		{1, 2 << 20, 4 << 20, 8 << 20},    // 8 MiB
		{1, 3 << 20, 4 << 20, 8<<20 + 1},  // 9 MiB, clipped at 8 MiB+1
		{1, 7 << 20, 4 << 20, 8<<20 + 1},  // two reads of 7 MiB, clipped
		{1, 16 << 20, 4 << 20, 8<<20 + 1}, // one read to the end
	} {
		if off, n := b.SR3IdentityRange(c.i, c.buf); off != c.off || n != c.n {
			t.Errorf("partition %d bufSize %d: %d+%d, want %d+%d", c.i, c.buf, off, n, c.off, c.n)
		}
	}
}

// TestBlocksHostile: each inconsistent or hostile blocks field gives its
// sentinel error (with ErrInvalid), from Decode or Validate, never a panic.
func TestBlocksHostile(t *testing.T) {
	const ok = `"pubTime":"20240101T000000","baseUrl":"http://h/","relPath":"a"`
	const id = `"2VKgSU17S3RqLbxm1+gnxvS8Ajt/JrFbDWTLVtSO3qX/YQ2QBGy9DQ6Q3mrWP+TDFnWvYWRZ4EMCowohnBYBhQ=="`
	man2 := `"manifest":{"0":{"size":10,"identity":` + id + `},"1":{"size":5,"identity":` + id + `}}`
	msg := func(blocks string, size int) string {
		return `{` + ok + fmt.Sprintf(`,"size":%d,"identity":{"method":"sha512","value":%s},"blocks":{%s}}`, size, id, blocks)
	}
	good := msg(`"method":"inplace","size":10,"number":1,`+man2, 5)
	m, err := Decode([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(Limits{}); err != nil {
		t.Fatalf("good message: %v", err)
	}
	cases := []struct {
		name, body string
		want       error
	}{
		{"unknown method", msg(`"method":"partitioned","size":10,"number":1,`+man2, 5), ErrBlocksMethod},
		{"no method", msg(`"size":10,"number":1,`+man2, 5), ErrBlocksMethod},
		{"zero size", msg(`"method":"inplace","size":0,"number":1,`+man2, 5), ErrBlocksSize},
		{"negative size", msg(`"method":"inplace","size":-10,"number":1,`+man2, 5), ErrBlocksSize},
		{"huge size", msg(`"method":"inplace","size":9223372036854775807,"number":1,`+man2, 5), ErrBlocksSize},
		{"size overflow", msg(`"method":"inplace","size":9223372036854775808,"number":1,`+man2, 5), ErrInvalid},
		{"size float", msg(`"method":"inplace","size":1.5,"number":1,`+man2, 5), ErrInvalid},
		{"negative number", msg(`"method":"inplace","size":10,"number":-1,`+man2, 5), ErrBlocksNumber},
		{"number past end", msg(`"method":"inplace","size":10,"number":2,`+man2, 5), ErrBlocksNumber},
		{"number huge", msg(`"method":"inplace","size":10,"number":9223372036854775807,`+man2, 5), ErrBlocksNumber},
		{"no manifest", msg(`"method":"inplace","size":10,"number":0`, 10), ErrBlocksManifest},
		{"empty manifest", msg(`"method":"inplace","size":10,"number":0,"manifest":{}`, 10), ErrBlocksManifest},
		{"manifest gap", msg(`"method":"inplace","size":10,"number":0,"manifest":{"0":{"size":10,"identity":`+id+`},"2":{"size":5,"identity":`+id+`}}`, 10), ErrBlocksManifest},
		{"manifest key", msg(`"method":"inplace","size":10,"number":0,"manifest":{"00":{"size":10,"identity":`+id+`}}`, 10), ErrBlocksManifest},
		{"manifest negative key", msg(`"method":"inplace","size":10,"number":0,"manifest":{"-0":{"size":10,"identity":`+id+`}}`, 10), ErrBlocksManifest},
		{"manifest type", msg(`"method":"inplace","size":10,"number":0,"manifest":[1]`, 10), ErrInvalid},
		{"short partition", msg(`"method":"inplace","size":10,"number":1,"manifest":{"0":{"size":9,"identity":`+id+`},"1":{"size":5,"identity":`+id+`}}`, 5), ErrBlocksManifest},
		{"long last", msg(`"method":"inplace","size":10,"number":1,"manifest":{"0":{"size":10,"identity":`+id+`},"1":{"size":11,"identity":`+id+`}}`, 11), ErrBlocksManifest},
		{"empty last", msg(`"method":"inplace","size":10,"number":0,"manifest":{"0":{"size":10,"identity":`+id+`},"1":{"size":0,"identity":`+id+`}}`, 10), ErrBlocksManifest},
		{"message size", msg(`"method":"inplace","size":10,"number":1,`+man2, 10), ErrBlocksManifest},
		{"bad identity", msg(`"method":"inplace","size":10,"number":1,"manifest":{"0":{"size":10,"identity":"AAAA"},"1":{"size":5,"identity":`+id+`}}`, 5), ErrBlocksManifest},
		{"other identity", `{` + ok + `,"size":5,"identity":{"method":"md5","value":"JY5UeUApwJgxaDWAgkQXTw=="},"blocks":{"method":"inplace","size":10,"number":1,` + man2 + `}}`, ErrBlocksManifest},
		{"too large file", msg(`"method":"inplace","size":1099511627776,"number":1,"manifest":{"0":{"size":1099511627776,"identity":`+id+`},"1":{"size":5,"identity":`+id+`}}`, 5), ErrBlocksManifest},
		{"blocks type", `{` + ok + `,"blocks":"inplace"}`, ErrInvalid},
		{"method type", msg(`"method":1,"size":10,"number":1,`+man2, 5), ErrInvalid},
		{"partition type", msg(`"method":"inplace","size":10,"number":0,"manifest":{"0":"x"}`, 10), ErrInvalid},
	}
	for _, c := range cases {
		m, err := Decode([]byte(c.body))
		if err == nil {
			err = m.Validate(Limits{})
		}
		if !errors.Is(err, c.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A message whose identity is not the partition's.
	other := strings.Replace(good, `"number":1,`, `"number":1,"count":2,`, 1)
	m, err = Decode([]byte(other))
	if err != nil {
		t.Fatal(err)
	}
	m.Identity.Value = "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
	if err := m.Validate(Limits{}); !errors.Is(err, ErrBlocksManifest) {
		t.Errorf("identity not the partition's: %v", err)
	}
}

// TestBlocksUnknownMembers: members this package does not know, in blocks
// and in manifest entries, are written back unchanged.
func TestBlocksUnknownMembers(t *testing.T) {
	body := `{"pubTime":"20240101T000000","baseUrl":"http://h/","relPath":"a","blocks":{"method":"inplace","size":10,"number":0,"count":1,"remainder":0,"manifest":{"0":{"size":10,"identity":"x","extra":[1]}}}}`
	m, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(Limits{}); err != nil {
		t.Fatal(err)
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(asAny(t, out), asAny(t, []byte(body))) {
		t.Errorf("got %s\nwant %s", out, body)
	}
	if len(m.Blocks.Extra) != 2 || len(m.Blocks.Manifest[0].Extra) != 1 {
		t.Errorf("%+v", m.Blocks)
	}
}

// withoutTimes decodes a JSON object without its pubTime and atime.
func withoutTimes(t *testing.T, body []byte) any {
	t.Helper()
	m := asAny(t, body).(map[string]any)
	delete(m, "pubTime")
	delete(m, "atime")
	return m
}
