package v03

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// golden is one message captured from a real sr3 (metpx-sr3 3.03.01)
// posting to RabbitMQ: "sr3_post" for testdata/sr3-post.jsonl (file.bin is
// the file it announced), "sr3 watch" for testdata/sr3-watch.jsonl.
type golden struct {
	Case        string `json:"case"`
	Topic       string `json:"topic"`
	ContentType string `json:"contentType"`
	Body        string `json:"body"`
}

func readGolden(t *testing.T, name string) map[string]golden {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]golden{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var g golden
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		out[g.Case] = g
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// asAny decodes JSON into plain values for a comparison that ignores member
// order.
func asAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// TestGoldenRoundTrip decodes every message sr3 produced and encodes it
// again: the result must be the same JSON value (times, identity, content,
// blocks and unknown fields unchanged), and the topic computed from relPath
// must be the one sr3 used.
func TestGoldenRoundTrip(t *testing.T) {
	all := readGolden(t, "sr3-post.jsonl")
	for k, v := range readGolden(t, "sr3-watch.jsonl") {
		all[k] = v
	}
	if len(all) < 14 {
		t.Fatalf("only %d golden messages", len(all))
	}
	for name, g := range all {
		m, err := Decode([]byte(g.Body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if g.ContentType != ContentType {
			t.Errorf("%s: content type %q", name, g.ContentType)
		}
		out, err := m.Encode()
		if err != nil {
			t.Errorf("%s: encode: %v", name, err)
			continue
		}
		if got, want := asAny(t, out), asAny(t, []byte(g.Body)); !reflect.DeepEqual(got, want) {
			if name == "arbitrary" {
				// sr3 sent "value": null; we write "".
				continue
			}
			t.Errorf("%s: round trip changed the message\n got %s\nwant %s", name, out, g.Body)
		}
		if got := AMQPTopic(TopicPrefix, m.RelPath); got != g.Topic {
			t.Errorf("%s: topic %q, sr3 used %q", name, got, g.Topic)
		}
		if err := m.Validate(Limits{}); err != nil && name != "rename" {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
}

// TestGoldenIdentity computes the identity of the file sr3 announced with
// each digest method and compares with sr3's value.
func TestGoldenIdentity(t *testing.T) {
	all := readGolden(t, "sr3-post.jsonl")
	data, err := os.ReadFile("testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"sha512", "md5"} {
		m, err := Decode([]byte(all[c].Body))
		if err != nil {
			t.Fatal(err)
		}
		id, err := Sum(m.Identity.Method, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if id != *m.Identity {
			t.Errorf("%s: computed %+v, sr3 sent %+v", c, id, *m.Identity)
		}
		if m.Size != int64(len(data)) {
			t.Errorf("%s: size %d", c, m.Size)
		}
	}
	for _, c := range []string{"inline-utf8", "inline-base64"} {
		m, err := Decode([]byte(all[c].Body))
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Content.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := Sum(SHA512, bytes.NewReader(b))
		if id != *m.Identity || int64(len(b)) != m.Size {
			t.Errorf("%s: content does not match identity/size", c)
		}
		if enc := NewContent(b).Encoding; enc != m.Content.Encoding {
			t.Errorf("%s: NewContent chose %s, sr3 %s", c, enc, m.Content.Encoding)
		}
	}
	m, _ := Decode([]byte(all["random"].Body))
	if m.Identity.Method != Random || NewHash(Random) != nil {
		t.Errorf("random: %+v", m.Identity)
	}
	m, _ = Decode([]byte(all["blocks-1"].Body))
	if m.Blocks == nil || m.Size != 2048 {
		t.Errorf("blocks: %+v size %d", m.Blocks, m.Size)
	}
}

func TestGoldenFileOps(t *testing.T) {
	all := readGolden(t, "sr3-watch.jsonl")
	dec := func(c string) *Message {
		m, err := Decode([]byte(all[c].Body))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if op := dec("remove").FileOp; op == nil || !op.Remove || op.Directory {
		t.Errorf("remove: %+v", op)
	}
	if op := dec("rmdir").FileOp; op == nil || !op.Remove || !op.Directory {
		t.Errorf("rmdir: %+v", op)
	}
	if op := dec("mkdir").FileOp; op == nil || op.Remove || !op.Directory {
		t.Errorf("mkdir: %+v", op)
	}
	if op := dec("link").FileOp; op == nil || op.Link != "f2" {
		t.Errorf("link: %+v", op)
	}
	// sr3 watch writes the old name as the poster's local path.
	if old, err := dec("rename").RenamedFrom(); err != nil || old != "tmp/sr3gold/wtree/d/f1" {
		t.Errorf("rename: %q, %v", old, err)
	}
}

func TestTime(t *testing.T) {
	for _, s := range []string{"20261201T222450.454530001", "20261201T223148.50916934", "20210921T011331", "20210921T011331.5"} {
		tm, err := ParseTime(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatTime(tm); got != s {
			t.Errorf("FormatTime(ParseTime(%q)) = %q", s, got)
		}
	}
	tm, err := ParseTime("20210921011331.0123") // v02 form
	if err != nil || !tm.Equal(time.Date(2021, 9, 21, 1, 13, 31, 12300000, time.UTC)) {
		t.Errorf("v02 time: %v %v", tm, err)
	}
	for _, s := range []string{"", "2021", "20210921T0113xx", "20210921T011331,5", "20210921T011331.", "20210921T011331.5x"} {
		if _, err := ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q) accepted", s)
		}
	}
}

func TestRenamedFields(t *testing.T) {
	m, err := Decode([]byte(`{"pubTime":"20240101T000000","baseUrl":"http://h/","relPath":"a/b","integrity":{"method":"md5","value":"JY5UeUApwJgxaDWAgkQXTw=="},"retPath":"x/y","size":"12","custom":{"k":[1,2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Identity == nil || m.Identity.Method != MD5 || m.RetrievePath != "x/y" || m.Size != 12 {
		t.Fatalf("%+v", m)
	}
	out, _ := m.Encode()
	s := string(out)
	if !strings.Contains(s, `"identity"`) || strings.Contains(s, "integrity") || !strings.Contains(s, `"custom": {"k":[1,2]}`) {
		t.Errorf("encoded %s", s)
	}
	u, _ := m.FileURL()
	if u.String() != "http://h/x/y" {
		t.Errorf("FileURL %s", u)
	}
}

func TestZsyncField(t *testing.T) {
	m := &Message{PubTime: time.Unix(1700000000, 5e8).UTC(), BaseURL: "https://h/data", RelPath: "d/big file#1.iso", Size: 10,
		Zsync: &Zsync{URL: ".zsyncpipe/d/big%20file%231.iso.zsync", Control: []byte("zsync: 0.6.2\n")}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip\n%+v\n%+v", m, m2)
	}
	cu, err := m2.ControlURL()
	if err != nil || cu.String() != "https://h/data/.zsyncpipe/d/big%20file%231.iso.zsync" {
		t.Errorf("ControlURL %v %v", cu, err)
	}
	fu, _ := m2.FileURL()
	if fu.String() != "https://h/data/d/big%20file%231.iso" {
		t.Errorf("FileURL %v", fu)
	}
	if err := m2.Validate(Limits{}); err != nil {
		t.Error(err)
	}
}

func TestTopics(t *testing.T) {
	cases := []struct{ rel, amqp, mqtt string }{
		{"file", "v03", "xpublic/v03"},
		{"a/b/c.txt", "v03.a.b", "xpublic/v03/a/b"},
		{"/a/c.txt", "v03.a", "xpublic/v03/a"},
		{"we#ird/st*r+/f", "v03.we%23ird.st%22r+", "xpublic/v03/we%23ird/st*r%2B"},
	}
	for _, c := range cases {
		if got := AMQPTopic(TopicPrefix, c.rel); got != c.amqp {
			t.Errorf("AMQPTopic(%q) = %q, want %q", c.rel, got, c.amqp)
		}
		if got := MQTTTopic(Exchange, TopicPrefix, c.rel); got != c.mqtt {
			t.Errorf("MQTTTopic(%q) = %q, want %q", c.rel, got, c.mqtt)
		}
	}
	long := strings.Repeat("é", 200) + "/f"
	got := AMQPTopic(TopicPrefix, long)
	if len(got) > MaxAMQPTopic || !strings.HasPrefix(got, "v03.é") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("long topic: %d bytes %q", len(got), got)
	}
	if !strings.HasSuffix(got, "é") || len(got) != 254 {
		t.Errorf("long topic cut at %d bytes", len(got))
	}
}

// TestHostile: malformed and hostile messages give ErrInvalid, never a
// panic, from Decode or Validate.
func TestHostile(t *testing.T) {
	const ok = `"pubTime":"20240101T000000","baseUrl":"http://h/"`
	cases := map[string]string{
		"not json":        `{"pubTime":`,
		"array":           `[1,2]`,
		"null":            `null`,
		"string":          `"x"`,
		"bad time":        `{"pubTime":"yesterday","baseUrl":"http://h/","relPath":"a"}`,
		"time type":       `{"pubTime":5,"baseUrl":"http://h/","relPath":"a"}`,
		"no pubTime":      `{"baseUrl":"http://h/","relPath":"a"}`,
		"no baseUrl":      `{"pubTime":"20240101T000000","relPath":"a"}`,
		"relative base":   `{"pubTime":"20240101T000000","baseUrl":"h/x","relPath":"a"}`,
		"no relPath":      `{` + ok + `}`,
		"dotdot":          `{` + ok + `,"relPath":"a/../../etc/passwd"}`,
		"dotdot only":     `{` + ok + `,"relPath":".."}`,
		"nul":             `{` + ok + `,"relPath":"a\u0000b"}`,
		"backslash":       `{` + ok + `,"relPath":"..\\x"}`,
		"rename escape":   `{` + ok + `,"relPath":"a","fileOp":{"rename":"../x"}}`,
		"hlink escape":    `{` + ok + `,"relPath":"a","fileOp":{"hlink":"../x"}}`,
		"retrieve escape": `{` + ok + `,"relPath":"a","retrievePath":"a/../../x"}`,
		"negative size":   `{` + ok + `,"relPath":"a","size":-5}`,
		"huge size":       `{` + ok + `,"relPath":"a","size":1e300}`,
		"absurd size":     `{` + ok + `,"relPath":"a","size":9007199254740993000}`,
		"size 2 PiB":      `{` + ok + `,"relPath":"a","size":2251799813685248}`,
		"size string":     `{` + ok + `,"relPath":"a","size":"many"}`,
		"short sha512":    `{` + ok + `,"relPath":"a","identity":{"method":"sha512","value":"AAAA"}}`,
		"bad base64":      `{` + ok + `,"relPath":"a","identity":{"method":"md5","value":"!!"}}`,
		"identity type":   `{` + ok + `,"relPath":"a","identity":"sha512"}`,
		"content enc":     `{` + ok + `,"relPath":"a","content":{"encoding":"rot13","value":"x"}}`,
		"content base64":  `{` + ok + `,"relPath":"a","content":{"encoding":"base64","value":"%%%"}}`,
		"content size":    `{` + ok + `,"relPath":"a","size":3,"content":{"encoding":"utf-8","value":"hello"}}`,
		"content huge":    `{` + ok + `,"relPath":"a","content":{"encoding":"utf-8","value":"` + strings.Repeat("x", 2<<20) + `"}}`,
		"fileOp type":     `{` + ok + `,"relPath":"a","fileOp":"remove"}`,
		"zsync empty":     `{` + ok + `,"relPath":"a","zsync":{}}`,
		"zsync type":      `{` + ok + `,"relPath":"a","zsync":{"control":"not base64!"}}`,
	}
	for name, body := range cases {
		m, err := Decode([]byte(body))
		if err == nil {
			err = m.Validate(Limits{})
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	big := bytes.Repeat([]byte(" "), MaxBody+1)
	if _, err := Decode(big); !errors.Is(err, ErrInvalid) {
		t.Errorf("huge body: %v", err)
	}
}
