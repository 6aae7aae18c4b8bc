package treeindex

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/zsyncpipe/zsyncpipe/relpath"
)

// Version is the format version this package writes. Readers accept
// versions 1 to Version; a later version is refused with ErrVersion.
const Version = 1

// Locations of the publisher's files below the root of a published tree.
const (
	// Dir is the hidden directory at the tree's root that holds the index
	// and the control files. It is never listed in the index.
	Dir = ".zsyncpipe"
	// IndexPath is the index's path relative to the tree's root.
	IndexPath = Dir + "/index.jsonl.gz"
	// ControlSuffix ends the name of every control file.
	ControlSuffix = ".zsync"
	// PackDir is the directory, relative to the tree's root, of the pack
	// files that hold the compressed content of small files.
	PackDir = Dir + "/packs"
	// PackSuffix ends the name of every pack file.
	PackSuffix = ".pack"
	// FramesDir is the directory, relative to the tree's root, of the
	// files of compressed frames (Entry.Frames).
	FramesDir = Dir + "/frames"
	// FramesSuffix ends the name of every file of frames.
	FramesSuffix = ".frames"
)

// Encodings of a file's content in a pack (PackRef.Encoding).
const (
	// PackZstd is one zstd frame (RFC 8878) holding the whole file.
	PackZstd = "zstd"
	// PackRaw is the file's bytes as they are.
	PackRaw = "raw"
	// PackS2 is one S2 block (github.com/klauspost/compress/s2, the
	// block format, not the stream format) holding the whole file: about
	// a third of zstd's cost to the publisher for larger records. Readers
	// that predate it fetch such a file by its path.
	PackS2 = "s2"
)

// Limits a Reader enforces by default.
const (
	// DefaultMaxEntries bounds the entries of one index.
	DefaultMaxEntries = 1 << 26
	// MaxInline is the largest inline content an entry may carry.
	MaxInline = 64 << 10
	// MaxPacked is the largest file whose content may be in a pack, and
	// MaxPackLength the longest record of one file in a pack (a zstd
	// frame of incompressible data is a little longer than the data).
	MaxPacked     = 1 << 20
	MaxPackLength = MaxPacked + 4096
	// maxPackOffset bounds offsets in packs (2^50 bytes).
	maxPackOffset = 1 << 50
	// maxLine bounds one line: a path, a link target and inline data in
	// base64 (or the lengths of frames, which a file with inline data
	// never has, in no more), with room for the other fields.
	maxLine = 3*relpath.MaxLen + max(MaxInline, 3*MaxFrames)*4/3 + 1024
)

// Errors of this package; every error a Reader or Writer returns for bad
// content wraps ErrFormat, and those caused by an unsafe path wrap
// relpath.ErrUnsafe too.
var (
	// ErrFormat reports an index that is malformed, inconsistent,
	// truncated, or that breaks a rule of the format.
	ErrFormat = errors.New("invalid tree index")
	// ErrVersion reports an index of a later format version.
	ErrVersion = errors.New("unsupported tree index version")
)

// Type is the type of an entry.
type Type uint8

// Entry types.
const (
	File      Type = 1 // a regular file
	Directory Type = 2 // a directory
	Symlink   Type = 3 // a symbolic link
)

// String returns the name the format uses: "file", "dir" or "symlink".
func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Directory:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

func parseType(s string) (Type, bool) {
	switch s {
	case "file":
		return File, true
	case "dir":
		return Directory, true
	case "symlink":
		return Symlink, true
	}
	return 0, false
}

// Entry is one directory, regular file or symbolic link of the tree.
type Entry struct {
	// Path is the entry's slash-separated path relative to the tree's
	// root; it passes relpath.Check.
	Path string
	// Type is the entry's type.
	Type Type
	// Size is a file's length in bytes; 0 for directories and symlinks.
	Size int64
	// Mode holds the permission bits and fs.ModeSetuid, fs.ModeSetgid and
	// fs.ModeSticky; no type bits.
	Mode fs.FileMode
	// MTime is the modification time, to the nanosecond when known.
	MTime time.Time
	// SHA256 is the whole-file SHA-256 of a file (32 bytes); nil for
	// directories and symlinks.
	SHA256 []byte
	// Control is the path, relative to the tree's root, of the file's zsync
	// control file, or "" when the file has none (small files, which
	// clients fetch whole).
	Control string
	// Data is a tiny file's whole content, inlined in the index; nil when
	// not inlined. When not nil, len(Data) == Size.
	Data []byte
	// Target is a symlink's target, as read by os.Readlink. It is not
	// checked to stay inside the tree: see Entry.LinkInside.
	Target string
	// Inode is the publisher's inode number of a file, 0 when unknown. It
	// only lets the publisher notice a file replaced by another of the same
	// size and mtime; clients ignore it.
	Inode uint64
	// Pack, if not nil, locates a copy of a small file's content in a pack
	// file, which a client can fetch together with others by byte ranges.
	// Files with inline data never have one; files with a control file
	// may (a client then chooses: the record, or the blocks it lacks).
	// The file itself is published at Path as always; a client that cannot
	// use the pack (unknown encoding, pack gone) fetches it there.
	Pack *PackRef
	// ControlPack, if not nil, locates a copy of the file's control file
	// (Control) in a pack, so that a client fetches the control files of
	// many files with a few multi-range requests instead of one request
	// each. The publisher keeps control records in packs of their own,
	// encoded PackRaw. The control file itself is published at Control as
	// always; a client that cannot use the record (unknown encoding, pack
	// gone, a record that does not parse or describes another file) fetches
	// it there.
	ControlPack *PackRef
	// Sums, if not nil, locates the file's block sums in a pack: its block
	// records without the text header of a control file
	// (control.DecodeSums, with the entry's size and SHA-256), encoded
	// PackRaw. The publisher writes them for small files whose pack
	// record is raw (content that does not compress), so that a client
	// with an older version can fetch only the blocks it lacks, as byte
	// ranges of that record. A client that cannot use them fetches the
	// file whole.
	Sums *PackRef
	// Frames, if not nil, describes a compressed copy of a file with a
	// control file, cut into frames compressed each on its own, so that a
	// client missing most of a frame's blocks fetches the compressed frame
	// instead (a byte range of FramesPath(Frames.Name)). The file itself
	// is published at Path as always; a client that cannot use the frames
	// (unknown encoding, file gone, a frame that fails) fetches the
	// blocks there.
	Frames *Frames
}

// Frames describes the file of compressed frames of one file: frame i
// holds bytes [i·FrameSize, (i+1)·FrameSize) of the file (the last one
// is shorter), stored in Lengths[i] bytes, back to back from the start
// of the file of frames. A frame whose stored length is its decoded
// length is stored as it is; any other is one block of Encoding.
// (Package frames writes and reads them.)
type Frames struct {
	// Name names the file of frames (FramesPath): lower-case hex, 16 to
	// 64 digits, as a pack's name.
	Name string
	// Encoding names the frames' compression: "lz4", the LZ4 block
	// format (package frames). Readers accept other names, and clients
	// then do without the frames.
	Encoding string
	// FrameSize is a power of two from MinFrameSize to MaxFrameSize.
	FrameSize int64
	// Lengths are the stored lengths of the frames, one per frame: each
	// from 1 to its decoded length.
	Lengths []uint32
}

// Bounds of Frames: the frame size, and the count of frames of one file
// (so that a file of up to MaxFrames·MaxFrameSize bytes, 16 GiB, has
// frames, whose lengths, at most 3 bytes each as varints, fit in a line
// beside the longest path: see maxLine).
const (
	MinFrameSize = 4 << 10
	MaxFrameSize = 1 << 20
	MaxFrames    = 1 << 14
)

// FramesPath returns the path, relative to the tree's root, of the file
// of frames named name.
func FramesPath(name string) string { return FramesDir + "/" + name + FramesSuffix }

// count returns how many frames a file of size bytes has.
func (f *Frames) count(size int64) int64 { return (size + f.FrameSize - 1) / f.FrameSize }

// check checks the frames of a file of size bytes.
func (f *Frames) check(size int64) error {
	switch {
	case !ValidPackName(f.Name):
		return fmt.Errorf("name %q is not 16 to 64 lower-case hex digits", f.Name)
	case !validEncoding(f.Encoding):
		return fmt.Errorf("encoding %q", f.Encoding)
	case f.FrameSize < MinFrameSize || f.FrameSize > MaxFrameSize || f.FrameSize&(f.FrameSize-1) != 0:
		return fmt.Errorf("frame size %d is not a power of two from %d to %d", f.FrameSize, MinFrameSize, MaxFrameSize)
	case size <= 0 || int64(len(f.Lengths)) != f.count(size) || len(f.Lengths) > MaxFrames:
		return fmt.Errorf("%d frames for a file of %d bytes in frames of %d", len(f.Lengths), size, f.FrameSize)
	}
	for i, n := range f.Lengths {
		if n == 0 || int64(n) > min(f.FrameSize, size-int64(i)*f.FrameSize) {
			return fmt.Errorf("frame %d stored in %d bytes", i, n)
		}
	}
	return nil
}

// PackRef locates a file's content in a pack file: Length bytes at Offset
// of PackPath(Name), holding the content encoded as Encoding. What a client
// gets from there is verified against the entry's size and SHA-256 like
// anything else.
type PackRef struct {
	// Name names the pack: lower-case hex, 16 to 64 digits (the publisher
	// uses the first 16 bytes of the SHA-256 of the pack's content).
	Name string
	// Offset and Length are the record's place in the pack.
	Offset, Length int64
	// Encoding is PackZstd, PackS2 or PackRaw. Readers accept other names (a later
	// publisher may add some); clients fetch such a file by its path.
	Encoding string
}

// check checks what a reference holds on its own: its pack's name, where
// its record is, its encoding's name.
func (p *PackRef) check() error {
	switch {
	case !ValidPackName(p.Name):
		return fmt.Errorf("name %q is not 16 to 64 lower-case hex digits", p.Name)
	case p.Offset < 0 || p.Offset > maxPackOffset || p.Length <= 0 || p.Length > MaxPackLength:
		return fmt.Errorf("record at %d of %d bytes out of range", p.Offset, p.Length)
	case !validEncoding(p.Encoding):
		return fmt.Errorf("encoding %q", p.Encoding)
	}
	return nil
}

// PackPath returns the path, relative to the tree's root, of the pack
// named name.
func PackPath(name string) string { return PackDir + "/" + name + PackSuffix }

// ValidPackName reports whether name can name a pack: 16 to 64 lower-case
// hex digits.
func ValidPackName(name string) bool {
	if len(name) < 16 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validEncoding reports whether enc is a plausible encoding name: 1 to 16
// lower-case letters, digits or '-'.
func validEncoding(enc string) bool {
	if len(enc) == 0 || len(enc) > 16 {
		return false
	}
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// modeMask is what Mode may hold.
const modeMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// unixMode returns m as Unix permission bits (0o7777).
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileMode returns the Unix permission bits u as an fs.FileMode.
func fileMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// ModeOf returns the part of m that an Entry keeps.
func ModeOf(m fs.FileMode) fs.FileMode { return m & modeMask }

// Check reports whether e is a valid entry on its own: a safe path, a known
// type, fields that fit the type. The error wraps ErrFormat.
func (e *Entry) Check() error {
	if err := relpath.Check(e.Path); err != nil {
		return fmt.Errorf("%w: entry: %w", ErrFormat, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: entry %q: %s", ErrFormat, e.Path, fmt.Sprintf(format, args...))
	}
	if strings.HasPrefix(e.Path+"/", Dir+"/") {
		return bad("the publisher's directory %s is never listed", Dir)
	}
	if e.Mode&^modeMask != 0 {
		return bad("mode %v has bits besides permissions, setuid, setgid and sticky", e.Mode)
	}
	switch e.Type {
	case File:
		if e.Size < 0 {
			return bad("negative size %d", e.Size)
		}
		if len(e.SHA256) != 32 {
			return bad("file without a 32-byte SHA-256")
		}
		if e.Data != nil && int64(len(e.Data)) != e.Size {
			return bad("inline data of %d bytes for a file of %d", len(e.Data), e.Size)
		}
		if len(e.Data) > MaxInline {
			return bad("inline data of %d bytes, more than %d", len(e.Data), MaxInline)
		}
		if e.Control != "" {
			if err := relpath.Check(e.Control); err != nil {
				return fmt.Errorf("%w: entry %q: control: %w", ErrFormat, e.Path, err)
			}
			if !strings.HasPrefix(e.Control, Dir+"/") && path.Dir(e.Control) != path.Dir(e.Path) {
				return bad("control file %q is neither in %s nor beside the file", e.Control, Dir)
			}
			if !strings.HasSuffix(e.Control, ControlSuffix) {
				return bad("control file %q does not end in %s", e.Control, ControlSuffix)
			}
		}
		if e.Target != "" {
			return bad("file with a link target")
		}
		if p := e.Pack; p != nil {
			switch {
			case e.Data != nil:
				return bad("pack with inline data")
			case e.Size <= 0 || e.Size > MaxPacked:
				return bad("pack for a file of %d bytes (1 to %d)", e.Size, MaxPacked)
			case p.Encoding == PackRaw && p.Length != e.Size:
				return bad("raw pack record of %d bytes for a file of %d", p.Length, e.Size)
			}
			if err := p.check(); err != nil {
				return bad("pack %v", err)
			}
		}
		if p := e.Sums; p != nil {
			switch {
			case e.Data != nil:
				return bad("block sums with inline data")
			case e.Size <= 0:
				return bad("block sums for an empty file")
			}
			if err := p.check(); err != nil {
				return bad("sums %v", err)
			}
		}
		if f := e.Frames; f != nil {
			switch {
			case e.Control == "":
				return bad("frames without a control file")
			case e.Data != nil:
				return bad("frames with inline data")
			}
			if err := f.check(e.Size); err != nil {
				return bad("frames: %v", err)
			}
		}
		if p := e.ControlPack; p != nil {
			if e.Control == "" {
				return bad("control pack record without a control file")
			}
			if err := p.check(); err != nil {
				return bad("control pack %v", err)
			}
		}
	case Directory, Symlink:
		if e.Size != 0 || e.SHA256 != nil || e.Control != "" || e.Data != nil || e.Pack != nil || e.ControlPack != nil || e.Sums != nil || e.Frames != nil {
			return bad("%s with a size, hash, control file or data", e.Type)
		}
		if e.Type == Directory && e.Target != "" {
			return bad("directory with a link target")
		}
		if e.Type == Symlink {
			if e.Target == "" || len(e.Target) > relpath.MaxLen || strings.ContainsRune(e.Target, 0) {
				return bad("symlink target empty, longer than %d bytes or containing NUL", relpath.MaxLen)
			}
		}
	default:
		return bad("unknown type %d", e.Type)
	}
	return nil
}

// LinkInside reports whether a symlink entry's target, resolved lexically
// from the entry's directory, stays inside the tree (absolute targets never
// do). It does not follow other links of the tree; a client that creates
// links must also refuse to write through them.
func (e *Entry) LinkInside() bool {
	if e.Type != Symlink || e.Target == "" || strings.HasPrefix(e.Target, "/") {
		return false
	}
	p := path.Join(path.Dir(e.Path), e.Target)
	return p != ".." && !strings.HasPrefix(p, "../") && !strings.HasPrefix(p, "/")
}

// Hex returns e.SHA256 in lower-case hex.
func (e *Entry) Hex() string { return hex.EncodeToString(e.SHA256) }

// Compare orders paths as a depth-first walk with sorted names visits them:
// byte-wise, except that '/' sorts before every other byte, so that "a",
// "a/b", "a-b" is the order. It returns -1, 0 or +1.
func Compare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return +1
		}
		if ca < cb {
			return -1
		}
		return +1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return +1
	}
	return 0
}

// ControlPath returns the path, relative to the tree's root, of the control
// file of the file at rel: Dir/rel.zsync, or rel.zsync beside the file when
// beside is set.
func ControlPath(rel string, beside bool) string {
	if beside {
		return rel + ControlSuffix
	}
	return Dir + "/" + rel + ControlSuffix
}

// order checks that entries arrive in Compare order, once each, each below
// a directory listed before it. It keeps the stack of open directories.
type order struct {
	last string
	n    int64
	dirs []string // ancestors of the last entry that are directories
}

func (o *order) add(e *Entry) error {
	if o.n > 0 && Compare(o.last, e.Path) >= 0 {
		if o.last == e.Path {
			return fmt.Errorf("%w: entry %q listed twice", ErrFormat, e.Path)
		}
		return fmt.Errorf("%w: entry %q listed after %q: entries must be in order", ErrFormat, e.Path, o.last)
	}
	parent := path.Dir(e.Path)
	for len(o.dirs) > 0 && !strings.HasPrefix(e.Path, o.dirs[len(o.dirs)-1]+"/") {
		o.dirs = o.dirs[:len(o.dirs)-1]
	}
	if parent != "." && (len(o.dirs) == 0 || o.dirs[len(o.dirs)-1] != parent) {
		return fmt.Errorf("%w: entry %q: its directory %q is not listed before it", ErrFormat, e.Path, parent)
	}
	if e.Type == Directory {
		o.dirs = append(o.dirs, e.Path)
	}
	o.last = e.Path
	o.n++
	return nil
}
