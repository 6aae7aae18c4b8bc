package treeindex

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeLine: a line the hand-written parser accepts decodes exactly
// as encoding/json decodes it (which must accept it too); decodeLine
// agrees with encoding/json on every line, errors included.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range []string{
		`{"path":"src/archive/tar/testdata/pax-global-records.tar","type":"file","size":7168,"mode":420,"mtime":1796163893517156670,"sha256":"e4e6b8700915613e10edbfe16f31c8d3edfd80603fa4f12fd6eeee5881cbd881","ino":15395232,"pack":{"len":311}}`,
		`{"path":"d","type":"dir","mode":493}`,
		`{"path":"l","type":"symlink","mode":511,"target":"../x"}`,
		`{"path":"f","type":"file","size":3,"sha256":"00","data":"YWJj","control":".zsyncpipe/f.zsync"}`,
		`{"path":"p","type":"file","size":1,"pack":{"name":"0123456789abcdef","off":0,"len":9,"enc":"s2"}}`,
		`{"path":"p","type":"file","pack":{}}`,
		`{"mode":0,"end":{"count":1,"sha256":"ab"}}`,
		`{"path":"a\u00e9","type":"file"}`,
		`{"path":"é","Path":"x"}`,
		`{"path":"a","path":"b"}`,
		`{"size":-0,"mtime":-9223372036854775808,"mode":4294967295,"ino":18446744073709551615}`,
		`{"size":9223372036854775808}`,
		`{"mode":4294967296}`,
		`{"size":01}`,
		`{"size":1.0}`,
		`{"size":1e3}`,
		`{"data":null}`,
		`{"path":"x"} `,
		`{}`,
		`{"path":"\xff"}`,
		`{"pack":{"off":1,"off":2}}`,
		`{"mode":-1}`,
		`{"type":"weird"}`,
		`{"path":"b","type":"file","size":70000,"control":".zsyncpipe/b.zsync","frames":{"name":"0123456789abcdef","enc":"s2","fsz":65536,"lens":"gCCIJw=="}}`,
		`{"frames":{"name":"x","fsz":1}}`,
		`{"frames":{"lens":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var fast entryLine
		ok := parseLine(line, &fast)
		var std entryLine
		jerr := json.Unmarshal(line, &std)
		if ok {
			if jerr != nil {
				t.Fatalf("parsed %q, which encoding/json refuses: %v", line, jerr)
			}
			if !reflect.DeepEqual(fast, std) {
				t.Fatalf("%q: parsed %+v, encoding/json %+v", line, fast, std)
			}
		}
		var got entryLine
		err := decodeLine(line, &got)
		if (err == nil) != (jerr == nil) || err == nil && !reflect.DeepEqual(got, std) {
			t.Fatalf("%q: decodeLine %+v, %v; encoding/json %+v, %v", line, got, err, std, jerr)
		}
	})
}

// TestParseLineFast: the lines a Writer writes take the fast path.
func TestParseLineFast(t *testing.T) {
	for _, e := range sample() {
		l := toLine(&e)
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		var got entryLine
		if !parseLine(b, &got) {
			t.Errorf("%s: not parsed by hand", b)
		}
	}
}
