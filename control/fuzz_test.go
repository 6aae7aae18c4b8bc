package control

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

func FuzzRead(f *testing.F) {
	legacy := mustWrite(f, testFile(f, Header{Version: "0.6.2", Filename: "a.iso",
		MTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Blocksize: 16, Length: 100,
		HashLengths: HashLengths{2, 2, 4}, URLs: []string{"a.iso", "http://x/a.iso"},
		StrongAlgorithm: strong.MD4, SHA1: sha(20, 9)}, 1))
	spec := mustWrite(f, testFile(f, Header{Version: "0.7.2", Blocksize: 8, Length: 20,
		HashLengths: HashLengths{1, 3, 20}, StrongAlgorithm: strong.SHA224, SHA256: sha(32, 3),
		Safe: []string{"X-Note"}, Extra: []Field{{"X-Note", "hi"}, {"Z-URL", "z"}}}, 2))
	f.Add(legacy)
	f.Add(spec)
	if z, err := os.ReadFile(testdataZsync); err == nil {
		f.Add(z)
	} else {
		f.Fatal(err)
	}
	f.Add(legacy[:len(legacy)-1])
	f.Add(append(bytes.Clone(legacy), 0))
	f.Add([]byte(strings.Replace(string(legacy), "\n", "\r\n", 3)))
	f.Add([]byte(strings.Replace(string(legacy), "Blocksize: 16", "Blocksize: 3000", 1)))
	f.Add([]byte(strings.Replace(string(legacy), "Length: 100", "Length: 1000000000000000000", 1)))
	f.Add([]byte(strings.Replace(string(spec), "Safe: X-Note File-Hash", "Safe: X-Not File-Hash", 1)))
	f.Add([]byte("zsync: 0.6.2\nBlocksize: 1\nLength: 2\nZ-Map2: 1\nabcd\nHash-Lengths: 1,1,3\n\nabcdefgh"))
	f.Add([]byte("zsync: 0.6.2\nSafe: A\nA: b \r\nMTime: 01 Jan 2024 00:00:00 -0130\nBlocksize: 1\nLength: 0\n\n"))

	f.Fuzz(func(t *testing.T, in []byte) {
		f1, err := Read(bytes.NewReader(in))
		if err != nil {
			return
		}
		var b1 bytes.Buffer
		if err := Write(&b1, f1); err != nil {
			t.Fatalf("Write rejects what Read accepted: %v\n%+v", err, f1.Header)
		}
		f2, err := Read(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("Read rejects what Write wrote: %v\n%q", err, headerOf(b1.Bytes()))
		}
		if want := normalized(f1); !reflect.DeepEqual(f2, want) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", f2.Header, want.Header)
		}
		var b2 bytes.Buffer
		if err := Write(&b2, f2); err != nil || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("second Write differs (err %v)", err)
		}
	})
}
