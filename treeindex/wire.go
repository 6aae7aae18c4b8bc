package treeindex

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"time"
)

// magic is the key of the header line; its value is the version.
const magic = "zsyncpipe-tree"

// Header describes the index as a whole. It is the first line.
type Header struct {
	// Version is the format version; the Writer writes Version.
	Version int
	// Generation counts the index's changes: a publisher increments it
	// whenever it writes an index whose content hash differs from the
	// previous one. 0 when unknown.
	Generation uint64
	// Created is when the index was written.
	Created time.Time
	// Small is the small-file threshold: files shorter than Small bytes
	// have no control file. Informative.
	Small int64
	// Legacy reports that the control files are in the zsync 0.6.2 format
	// (MD4, SHA-1) rather than spec 0.8. Informative.
	Legacy bool
}

// headerLine is a Header on the wire.
type headerLine struct {
	Version    *int   `json:"zsyncpipe-tree"`
	Generation uint64 `json:"generation"`
	Created    string `json:"created,omitempty"`
	Small      int64  `json:"small,omitempty"`
	Legacy     bool   `json:"legacy,omitempty"`
}

// entryLine is an Entry, or the trailer, on the wire. Unknown keys are
// ignored by readers of the same version.
type entryLine struct {
	Path    string      `json:"path,omitempty"`
	Type    string      `json:"type,omitempty"`
	Size    int64       `json:"size,omitempty"`
	Mode    uint32      `json:"mode"`
	MTime   int64       `json:"mtime,omitempty"` // Unix nanoseconds
	SHA256  string      `json:"sha256,omitempty"`
	Control string      `json:"control,omitempty"`
	Data    *string     `json:"data,omitempty"` // standard base64
	Target  string      `json:"target,omitempty"`
	Inode   uint64      `json:"ino,omitempty"`
	Pack    *packLine   `json:"pack,omitempty"`
	CPack   *packLine   `json:"cpack,omitempty"` // ControlPack
	Sums    *packLine   `json:"sums,omitempty"`
	Frames  *framesLine `json:"frames,omitempty"`

	End *trailer `json:"end,omitempty"`
}

// packLine is a PackRef on the wire. Name, Offset and Encoding may be
// left out (see packContext).
type packLine struct {
	Name     string `json:"name,omitempty"`
	Offset   *int64 `json:"off,omitempty"`
	Length   int64  `json:"len"`
	Encoding string `json:"enc,omitempty"`
}

// framesLine is a Frames on the wire: the lengths are unsigned varints
// (encoding/binary), in standard base64.
type framesLine struct {
	Name      string `json:"name"`
	Encoding  string `json:"enc"`
	FrameSize int64  `json:"fsz"`
	Lengths   string `json:"lens"`
}

func framesToLine(f *Frames) *framesLine {
	b := make([]byte, 0, 3*len(f.Lengths))
	for _, n := range f.Lengths {
		b = binary.AppendUvarint(b, uint64(n))
	}
	return &framesLine{Name: f.Name, Encoding: f.Encoding, FrameSize: f.FrameSize, Lengths: base64.StdEncoding.EncodeToString(b)}
}

func framesFromLine(path string, l *framesLine) (*Frames, error) {
	b, err := base64.StdEncoding.DecodeString(l.Lengths)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %q: frames: lengths: %v", ErrFormat, path, err)
	}
	f := &Frames{Name: l.Name, Encoding: l.Encoding, FrameSize: l.FrameSize}
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > math.MaxUint32 || len(f.Lengths) >= MaxFrames {
			return nil, fmt.Errorf("%w: entry %q: frames: malformed lengths", ErrFormat, path)
		}
		f.Lengths = append(f.Lengths, uint32(n))
		b = b[k:]
	}
	return f, nil
}

// maxPackNames bounds the packs one index may refer to (a Reader keeps
// the end of the last record of each).
const maxPackNames = 1 << 16

// packContext shortens pack references on the wire, where the offsets
// are most of what a reference costs: a reference leaves out "name" when
// its pack is that of the previous reference, "off" when its record
// starts where the previous record of the same pack (in the index) ended,
// and "enc" when it is the context's default encoding ("zstd" for
// "pack", "raw" for "cpack" and "sums"). Writer and Reader each keep one
// per kind of reference: "pack", "cpack" and "sums" are shortened apart,
// so that a reader that predates "cpack" or "sums" (and ignores it, as an
// unknown key) still completes every other reference right.
type packContext struct {
	def  string           // the encoding left out; "" means PackZstd
	last string           // pack of the previous reference
	end  map[string]int64 // end of the last record of each pack
}

// defaultEncoding returns the encoding a reference of c leaves out.
func (c *packContext) defaultEncoding() string {
	if c.def == "" {
		return PackZstd
	}
	return c.def
}

// shorten leaves out of l what a reader infers, and notes p.
func (c *packContext) shorten(l *packLine, p *PackRef) {
	if p.Name == c.last {
		l.Name = ""
	}
	if end, ok := c.end[p.Name]; ok && end == p.Offset {
		l.Offset = nil
	}
	if p.Encoding == c.defaultEncoding() {
		l.Encoding = ""
	}
	c.note(p)
}

// complete fills in what l left out and notes the result.
func (c *packContext) complete(path string, l *packLine) (*PackRef, error) {
	p := &PackRef{Name: l.Name, Length: l.Length, Encoding: l.Encoding}
	if p.Name == "" {
		if c.last == "" {
			return nil, fmt.Errorf("%w: entry %q: pack without a name, and no pack before it", ErrFormat, path)
		}
		p.Name = c.last
	}
	if l.Offset != nil {
		p.Offset = *l.Offset
	} else if end, ok := c.end[p.Name]; ok {
		p.Offset = end
	} else {
		return nil, fmt.Errorf("%w: entry %q: first record of pack %q without an offset", ErrFormat, path, p.Name)
	}
	if p.Encoding == "" {
		p.Encoding = c.defaultEncoding()
	}
	if _, ok := c.end[p.Name]; !ok && len(c.end) >= maxPackNames {
		return nil, fmt.Errorf("%w: entry %q: more than %d packs", ErrFormat, path, maxPackNames)
	}
	c.note(p)
	return p, nil
}

func (c *packContext) note(p *PackRef) {
	if c.end == nil {
		c.end = map[string]int64{}
	}
	c.last = p.Name
	if p.Offset >= 0 && p.Length > 0 && p.Offset <= maxPackOffset && p.Length <= MaxPackLength {
		c.end[p.Name] = p.Offset + p.Length
	}
}

// trailer ends the index.
type trailer struct {
	Count  int64  `json:"count"`
	SHA256 string `json:"sha256"`
}

func toLine(e *Entry) entryLine {
	l := entryLine{
		Path:    e.Path,
		Type:    e.Type.String(),
		Size:    e.Size,
		Mode:    unixMode(e.Mode),
		Control: e.Control,
		Target:  e.Target,
		Inode:   e.Inode,
	}
	if !e.MTime.IsZero() {
		l.MTime = e.MTime.UnixNano()
	}
	if e.SHA256 != nil {
		l.SHA256 = hex.EncodeToString(e.SHA256)
	}
	if e.Data != nil {
		s := base64.StdEncoding.EncodeToString(e.Data)
		l.Data = &s
	}
	if p := e.Pack; p != nil {
		off := p.Offset
		l.Pack = &packLine{Name: p.Name, Offset: &off, Length: p.Length, Encoding: p.Encoding}
	}
	if p := e.ControlPack; p != nil {
		off := p.Offset
		l.CPack = &packLine{Name: p.Name, Offset: &off, Length: p.Length, Encoding: p.Encoding}
	}
	if p := e.Sums; p != nil {
		off := p.Offset
		l.Sums = &packLine{Name: p.Name, Offset: &off, Length: p.Length, Encoding: p.Encoding}
	}
	if f := e.Frames; f != nil {
		l.Frames = framesToLine(f)
	}
	return l
}

func fromLine(l *entryLine) (Entry, error) {
	t, ok := parseType(l.Type)
	if !ok {
		return Entry{}, fmt.Errorf("%w: entry %q: unknown type %q", ErrFormat, l.Path, l.Type)
	}
	if l.Mode > 0o7777 {
		return Entry{}, fmt.Errorf("%w: entry %q: mode %o out of range", ErrFormat, l.Path, l.Mode)
	}
	e := Entry{
		Path:    l.Path,
		Type:    t,
		Size:    l.Size,
		Mode:    fileMode(l.Mode),
		Control: l.Control,
		Target:  l.Target,
		Inode:   l.Inode,
	}
	if l.MTime != 0 {
		e.MTime = time.Unix(0, l.MTime)
	}
	if l.SHA256 != "" {
		b, err := hex.DecodeString(l.SHA256)
		if err != nil {
			return Entry{}, fmt.Errorf("%w: entry %q: sha256: %v", ErrFormat, l.Path, err)
		}
		e.SHA256 = b
	}
	if l.Data != nil {
		b, err := base64.StdEncoding.DecodeString(*l.Data)
		if err != nil {
			return Entry{}, fmt.Errorf("%w: entry %q: data: %v", ErrFormat, l.Path, err)
		}
		e.Data = b
	}
	return e, nil
}
