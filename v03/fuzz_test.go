package v03

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// FuzzDecode feeds Decode arbitrary bodies, as a broker may deliver them,
// seeded with every message captured from a real sr3 and with hostile
// ones. Decode must return a message or an error wrapping ErrInvalid,
// never panic; the accessors a subscriber calls must not panic either;
// and a message that passes Validate must encode, and its encoding must
// decode and pass Validate again and encode to the same bytes (what a
// subscriber passes on is what it accepted).
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"sr3-post.jsonl", "sr3-watch.jsonl", "sr3-blocks.jsonl"} {
		file, err := os.Open("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var g golden
			if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
				f.Fatal(err)
			}
			f.Add([]byte(g.Body))
		}
		file.Close()
		if err := sc.Err(); err != nil {
			f.Fatal(err)
		}
	}
	const ok = `"pubTime":"20240101T000000","baseUrl":"http://h/"`
	for _, body := range []string{
		`{` + ok + `,"relPath":"a/../../etc/passwd"}`,
		`{` + ok + `,"relPath":"a","fileOp":{"rename":"../x"}}`,
		`{` + ok + `,"relPath":"a","size":"12","integrity":{"method":"md5","value":"1B2M2Y8AsgTpgAmY7PhCfg=="}}`,
		`{` + ok + `,"relPath":"a","content":{"encoding":"base64","value":"aGVsbG8="},"size":5}`,
		`{` + ok + `,"relPath":"a","zsync":{"url":"a.zsync","control":"eHg="},"x-other":[1,{"y":null}]}`,
		`{` + ok + `,"relPath":"a","blocks":{"method":"inplace","size":"4","number":"0","manifest":{}}}`,
		`null`, `[]`, `{}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		m.Path()
		m.RenamedFrom()
		m.FileURL()
		m.ControlURL()
		if m.Validate(Limits{}) != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("a valid message does not encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("its encoding does not decode: %v\n%s", err, enc)
		}
		if err := again.Validate(Limits{}); err != nil {
			t.Fatalf("its encoding is not valid: %v\n%s", err, enc)
		}
		enc2, err := again.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable (%v):\n%s\n%s", err, enc, enc2)
		}
	})
}
