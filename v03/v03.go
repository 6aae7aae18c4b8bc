// Package v03 encodes and decodes Sarracenia v03 notification messages, the
// JSON announcements that MetPX Sarracenia (sr3) exchanges over AMQP 0-9-1 and
// MQTT v5 brokers, and builds their topics.
//
// The encoding follows sr3 (sarracenia/postformat/v03.py and
// docs/source/Reference/sr_post.7.rst): a JSON body with pubTime, baseUrl,
// relPath, identity, size, mtime, mode, fileOp, content and blocks, and a
// topic outside the body. Fields this package does not know are kept in
// Message.Extra and written back unchanged, as every Sarracenia pump must do.
// zsyncpipe's own field, "zsync", carries the URL of a file's control file
// and, when small, the control file itself.
//
// A decoded message is untrusted: Decode only checks that it is well-formed
// JSON of the right types; Validate applies the rules a subscriber needs
// (relPath that stays below its directory, sizes within limits, identity
// values of the right length).
package v03

import (
	"bytes"
	"crypto/md5"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ContentType is the MIME type of a v03 body, set as the AMQP content_type
// property and the MQTT v5 ContentType property.
const ContentType = "application/json"

// ErrInvalid is returned (wrapped) for a message that is malformed or may
// not be acted on.
var ErrInvalid = errors.New("invalid v03 message")

// Identity methods sr3 ships.
const (
	SHA512    = "sha512"    // sr3's default: SHA-512 of the whole file
	MD5       = "md5"       // MD5 of the whole file
	Arbitrary = "arbitrary" // a value set by the poster, compared as a string
	Random    = "random"    // a random value: the file is never the same
)

// Identity is a message's checksum of the announced file.
type Identity struct {
	// Method is "sha512", "md5", "arbitrary", "random", "cod" or another
	// method name.
	Method string `json:"method"`
	// Value is the base64 digest for sha512 and md5, an opaque string
	// otherwise. sr3 may send null, decoded as "".
	Value string `json:"value"`
}

// NewHash returns a hash for a checksum method whose value is a digest of
// the file (sha512, md5), or nil for any other method.
func NewHash(method string) hash.Hash {
	switch method {
	case SHA512:
		return sha512.New()
	case MD5:
		return md5.New()
	}
	return nil
}

// Sum reads r to the end and returns its Identity with method (sha512 or
// md5).
func Sum(method string, r io.Reader) (Identity, error) {
	h := NewHash(method)
	if h == nil {
		return Identity{}, fmt.Errorf("identity method %q is not a digest: %w", method, ErrInvalid)
	}
	if _, err := io.Copy(h, r); err != nil {
		return Identity{}, err
	}
	return Identity{Method: method, Value: base64.StdEncoding.EncodeToString(h.Sum(nil))}, nil
}

// Content is a small file carried inside the message.
type Content struct {
	// Encoding is "utf-8" or "base64".
	Encoding string `json:"encoding"`
	// Value is the file's bytes in that encoding.
	Value string `json:"value"`
}

// NewContent returns data as Content, utf-8 when data is valid UTF-8 text
// without NUL bytes, base64 otherwise (sr3's inlineEncoding "guess").
func NewContent(data []byte) *Content {
	if isText(data) {
		return &Content{Encoding: "utf-8", Value: string(data)}
	}
	return &Content{Encoding: "base64", Value: base64.StdEncoding.EncodeToString(data)}
}

func isText(data []byte) bool {
	return bytes.IndexByte(data, 0) < 0 && utf8.Valid(data)
}

// Bytes decodes the content.
func (c *Content) Bytes() ([]byte, error) {
	switch c.Encoding {
	case "utf-8", "utf8", "":
		return []byte(c.Value), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(c.Value)
		if err != nil {
			return nil, fmt.Errorf("content: %v: %w", err, ErrInvalid)
		}
		return b, nil
	}
	return nil, fmt.Errorf("content encoding %q: %w", c.Encoding, ErrInvalid)
}

// FileOp is an operation other than "fetch the file" (sr3's fileOp field).
// Several may be set together: sr3 sends a rename of a directory as
// Rename with Directory, and a removal of a directory as Remove with
// Directory.
type FileOp struct {
	// Remove: the file at relPath was removed.
	Remove bool
	// Directory: relPath is a directory (created, or with Remove removed).
	Directory bool
	// Rename is the old relPath of a file now at relPath.
	Rename string
	// Link is the target of a symbolic link at relPath.
	Link string
	// HLink is the relPath a hard link at relPath points to.
	HLink string
	// Extra holds members this package does not know, written back
	// unchanged.
	Extra map[string]json.RawMessage
}

// MarshalJSON writes the operations set, as sr3 does: {"remove": ""},
// {"rename": "old/path"}, {"directory": ""}.
func (f FileOp) MarshalJSON() ([]byte, error) {
	var o object
	if f.Rename != "" {
		o.add("rename", f.Rename)
	}
	if f.Remove {
		o.add("remove", "")
	}
	if f.Directory {
		o.add("directory", "")
	}
	if f.Link != "" {
		o.add("link", f.Link)
	}
	if f.HLink != "" {
		o.add("hlink", f.HLink)
	}
	o.extra(f.Extra)
	return o.bytes()
}

// UnmarshalJSON reads a fileOp object.
func (f *FileOp) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*f = FileOp{}
	str := func(raw json.RawMessage) (string, error) {
		var s *string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if s == nil {
			return "", nil
		}
		return *s, nil
	}
	for k, raw := range m {
		var err error
		switch k {
		case "remove":
			f.Remove = true
		case "directory":
			f.Directory = true
		case "rename":
			f.Rename, err = str(raw)
		case "link":
			f.Link, err = str(raw)
		case "hlink":
			f.HLink, err = str(raw)
		default:
			if f.Extra == nil {
				f.Extra = map[string]json.RawMessage{}
			}
			f.Extra[k] = raw
		}
		if err != nil {
			return fmt.Errorf("fileOp %s: %w", k, err)
		}
	}
	return nil
}

// Zsync is zsyncpipe's extension field, "zsync": where the announced
// file's control file is, and the control file itself when it is small, so
// that a subscriber can delta-sync without a second request.
type Zsync struct {
	// URL of the control file. A relative URL is resolved against
	// baseUrl (as a directory), like relPath.
	URL string `json:"url"`
	// Control, when set, is the control file's bytes (base64 in JSON).
	Control []byte `json:"control,omitempty"`
}

// Message is one v03 notification message.
type Message struct {
	// PubTime is when the message was first published (required).
	PubTime time.Time
	// BaseURL is the URL relPath is relative to (required).
	BaseURL string
	// RelPath is the announced file's path below BaseURL, and below the
	// subscriber's directory (required).
	RelPath string
	// RetrievePath, when set, is used instead of RelPath to fetch the file.
	RetrievePath string
	// Identity is the file's checksum; nil when absent.
	Identity *Identity
	// FileOp is set for removals, renames, links and directories.
	FileOp *FileOp
	// Size is the file's size in bytes; -1 when absent.
	Size int64
	// MTime and ATime are the file's times; zero when absent.
	MTime, ATime time.Time
	// Mode is the file's permission bits as an octal string ("644"); empty
	// when absent.
	Mode string
	// Content is the file itself, for small files.
	Content *Content
	// ContentType is the file's MIME type.
	ContentType string
	// Source is the user that injected the file into the network.
	Source string
	// Blocks is set when the message announces one partition of a file
	// (sr3's experimental "blocks"); nil otherwise.
	Blocks *Blocks
	// Zsync is zsyncpipe's extension field; nil when absent.
	Zsync *Zsync
	// Extra holds the fields this package does not know, written back
	// unchanged.
	Extra map[string]json.RawMessage
}

// Encode returns the JSON body of m.
func (m *Message) Encode() ([]byte, error) {
	var o object
	o.add("pubTime", FormatTime(m.PubTime))
	o.add("baseUrl", m.BaseURL)
	o.add("relPath", m.RelPath)
	if m.RetrievePath != "" {
		o.add("retrievePath", m.RetrievePath)
	}
	if m.Source != "" {
		o.add("source", m.Source)
	}
	if m.Mode != "" {
		o.add("mode", m.Mode)
	}
	if m.Size >= 0 {
		o.add("size", m.Size)
	}
	if !m.MTime.IsZero() {
		o.add("mtime", FormatTime(m.MTime))
	}
	if !m.ATime.IsZero() {
		o.add("atime", FormatTime(m.ATime))
	}
	if m.Identity != nil {
		o.add("identity", m.Identity)
	}
	if m.FileOp != nil {
		o.add("fileOp", m.FileOp)
	}
	if m.ContentType != "" {
		o.add("contentType", m.ContentType)
	}
	if m.Content != nil {
		o.add("content", m.Content)
	}
	if m.Blocks != nil {
		o.add("blocks", m.Blocks)
	}
	if m.Zsync != nil {
		o.add("zsync", m.Zsync)
	}
	o.extra(m.Extra)
	return o.bytes()
}

// MaxBody is the largest body Decode accepts.
const MaxBody = 16 << 20

// Decode parses a v03 JSON body. Like sr3 it renames the old field names
// "integrity" to "identity" and "retPath" to "retrievePath", and accepts a
// size sent as a string. Unknown fields are kept in Extra. Decode checks
// types only; call Validate before acting on the message.
func Decode(body []byte) (*Message, error) {
	if len(body) > MaxBody {
		return nil, fmt.Errorf("body of %d bytes, more than %d: %w", len(body), MaxBody, ErrInvalid)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v: %w", err, ErrInvalid)
	}
	if fields == nil {
		return nil, fmt.Errorf("not a JSON object: %w", ErrInvalid)
	}
	if v, ok := fields["integrity"]; ok {
		if _, dup := fields["identity"]; !dup {
			fields["identity"] = v
		}
		delete(fields, "integrity")
	}
	if v, ok := fields["retPath"]; ok {
		if _, dup := fields["retrievePath"]; !dup {
			fields["retrievePath"] = v
		}
		delete(fields, "retPath")
	}
	m := &Message{Size: -1}
	for k, raw := range fields {
		if err := m.decodeField(k, raw); err != nil {
			return nil, fmt.Errorf("field %s: %w: %w", k, err, ErrInvalid)
		}
	}
	return m, nil
}

func (m *Message) decodeField(k string, raw json.RawMessage) error {
	isNull := string(bytes.TrimSpace(raw)) == "null"
	switch k {
	case "pubTime", "mtime", "atime":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		t, err := ParseTime(s)
		if err != nil {
			return err
		}
		switch k {
		case "pubTime":
			m.PubTime = t
		case "mtime":
			m.MTime = t
		default:
			m.ATime = t
		}
	case "baseUrl":
		return json.Unmarshal(raw, &m.BaseURL)
	case "relPath":
		return json.Unmarshal(raw, &m.RelPath)
	case "retrievePath":
		return json.Unmarshal(raw, &m.RetrievePath)
	case "source":
		return json.Unmarshal(raw, &m.Source)
	case "contentType":
		return json.Unmarshal(raw, &m.ContentType)
	case "mode":
		// sr3 writes a string; accept a number written by others.
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			var n json.Number
			if err2 := json.Unmarshal(raw, &n); err2 != nil {
				return err
			}
			s = n.String()
		}
		m.Mode = s
	case "size":
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			var s string
			if err2 := json.Unmarshal(raw, &s); err2 != nil {
				return err
			}
			n = json.Number(s)
		}
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return err
		}
		m.Size = v
	case "identity":
		if isNull {
			return nil
		}
		var id struct {
			Method string  `json:"method"`
			Value  *string `json:"value"`
		}
		if err := json.Unmarshal(raw, &id); err != nil {
			return err
		}
		m.Identity = &Identity{Method: id.Method}
		if id.Value != nil {
			m.Identity.Value = *id.Value
		}
	case "fileOp":
		if isNull {
			return nil
		}
		m.FileOp = new(FileOp)
		return json.Unmarshal(raw, m.FileOp)
	case "content":
		if isNull {
			return nil
		}
		m.Content = new(Content)
		return json.Unmarshal(raw, m.Content)
	case "blocks":
		if isNull {
			return nil
		}
		m.Blocks = new(Blocks)
		return json.Unmarshal(raw, m.Blocks)
	case "zsync":
		if isNull {
			return nil
		}
		m.Zsync = new(Zsync)
		return json.Unmarshal(raw, m.Zsync)
	default:
		if m.Extra == nil {
			m.Extra = map[string]json.RawMessage{}
		}
		m.Extra[k] = append(json.RawMessage(nil), raw...)
	}
	return nil
}

// timeLayout is sr3's time format without the fraction.
const timeLayout = "20060102T150405"

// FormatTime writes t as sr3 does (timeflt2str): UTC "YYYYMMDDTHHMMSS" and
// the fraction of a second with its trailing zeros dropped, no fraction
// when it is zero: "20261201T222450.45453".
func FormatTime(t time.Time) string {
	t = t.UTC()
	s := t.Format(timeLayout)
	if ns := t.Nanosecond(); ns != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
	}
	return s
}

// ParseTime reads a time in sr3's format, "YYYYMMDDTHHMMSS" with an
// optional fraction of any length, UTC; the v02 form without the "T" is
// accepted too.
func ParseTime(s string) (time.Time, error) {
	orig := s
	if len(s) >= 9 && s[8] != 'T' {
		s = s[:8] + "T" + s[8:]
	}
	if len(s) < len(timeLayout) {
		return time.Time{}, fmt.Errorf("time %q: too short", orig)
	}
	t, err := time.Parse(timeLayout, s[:len(timeLayout)])
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %v", orig, err)
	}
	frac := s[len(timeLayout):]
	if frac == "" {
		return t, nil
	}
	if frac[0] != '.' || len(frac) < 2 {
		return time.Time{}, fmt.Errorf("time %q: bad fraction", orig)
	}
	digits := frac[1:]
	ns := 0
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("time %q: bad fraction", orig)
		}
		if i < 9 {
			ns = ns*10 + int(c-'0')
		}
	}
	for i := len(digits); i < 9; i++ {
		ns *= 10
	}
	return t.Add(time.Duration(ns)), nil
}

// object builds a JSON object with its members in insertion order.
type object struct {
	buf bytes.Buffer
	err error
}

func (o *object) add(k string, v any) {
	if o.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		o.err = fmt.Errorf("%s: %w", k, err)
		return
	}
	o.raw(k, b)
}

func (o *object) raw(k string, v []byte) {
	if o.buf.Len() == 0 {
		o.buf.WriteByte('{')
	} else {
		o.buf.WriteString(", ")
	}
	kb, _ := json.Marshal(k)
	o.buf.Write(kb)
	o.buf.WriteString(": ")
	o.buf.Write(v)
}

// extra adds the members of m in sorted key order.
func (o *object) extra(m map[string]json.RawMessage) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !json.Valid(m[k]) {
			o.err = fmt.Errorf("%s: not valid JSON", k)
			return
		}
		o.raw(k, m[k])
	}
}

func (o *object) bytes() ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	if o.buf.Len() == 0 {
		return []byte("{}"), nil
	}
	o.buf.WriteByte('}')
	return o.buf.Bytes(), nil
}
