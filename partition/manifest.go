package partition

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/zsyncpipe/zsyncpipe/v03"
)

// Errors of the package; each is returned wrapped, with context.
var (
	// ErrManifest reports a manifest that cannot describe a file (sizes
	// that do not tile it, an identity method that is not a digest).
	ErrManifest = errors.New("invalid partition manifest")
	// ErrMismatch reports partition data that does not have the
	// manifest's identity.
	ErrMismatch = errors.New("partition does not match its manifest")
	// ErrSuperseded reports that the record is now assembling another
	// version of the file than the one asked for: the work is dropped.
	ErrSuperseded = errors.New("another version of the file is being assembled")
	// ErrDone reports a partition that is in already (or a file that is
	// in place already).
	ErrDone = errors.New("partition is in already")
)

// Part is one partition of a manifest.
type Part struct {
	// Size is the partition's length in bytes.
	Size int64 `json:"size"`
	// Identity is the base64 digest of the partition's bytes, with the
	// manifest's Method.
	Identity string `json:"identity"`
}

// Manifest describes a file as fixed-size partitions: partition i is
// the Parts[i].Size bytes at offset i × Size. It is sr3's v03 "blocks"
// manifest together with the partition size and the identity method.
type Manifest struct {
	// Size is the partition size.
	Size int64 `json:"size"`
	// Method is the identity method of the parts ("sha512", "md5").
	Method string `json:"method"`
	// Parts lists the partitions in order.
	Parts []Part `json:"parts"`
	// BufSize, when set, also accepts for a partition the identity sr3
	// 3.3.1 posts, which covers more than the partition: the bytes of
	// v03.Blocks.SR3IdentityRange with sr3's bufSize (v03.SR3BufSize by
	// default), up to the end of the file for all but small offsets. Such
	// an identity can be checked only once the bytes it covers are in: by
	// Place, when the whole file is.
	BufSize int64 `json:"bufSize,omitempty"`
}

// sr3Range returns the bytes sr3 3.03.01 hashes for partition i
// (v03.Blocks.SR3IdentityRange).
func (m *Manifest) sr3Range(i int) (off, n int64) {
	b := v03.Blocks{Size: m.Size, Manifest: make([]v03.Partition, len(m.Parts))}
	for j, p := range m.Parts {
		b.Manifest[j].Size = p.Size
	}
	return b.SR3IdentityRange(int64(i), m.BufSize)
}

// Matches reports whether r, a file of length bytes, holds partition i:
// the digest of the partition's bytes is its identity, or, with BufSize,
// the digest of the bytes sr3 3.03.01 hashes (which needs length to be
// the manifest's).
func (m *Manifest) Matches(i int, r io.ReaderAt, length int64) (bool, error) {
	off, p := m.Offset(i), m.Parts[i]
	if off+p.Size > length {
		return false, nil
	}
	id, err := Sum(m.Method, r, off, p.Size)
	if err != nil || id == p.Identity {
		return err == nil, err
	}
	if m.BufSize <= 0 || length != m.Length() {
		return false, nil
	}
	_, n := m.sr3Range(i)
	if n == p.Size {
		return false, nil
	}
	id, err = Sum(m.Method, r, off, n)
	return err == nil && id == p.Identity, err
}

// Length returns the length of the file the manifest describes.
func (m *Manifest) Length() int64 {
	if len(m.Parts) == 0 {
		return 0
	}
	last := len(m.Parts) - 1
	return int64(last)*m.Size + m.Parts[last].Size
}

// Offset returns the offset of partition n.
func (m *Manifest) Offset(n int) int64 { return int64(n) * m.Size }

// Check reports a manifest that does not tile a file of at most maxLength
// bytes: every partition but the last has Size bytes, the last at most
// Size and more than none, and the method is a digest.
func (m *Manifest) Check(maxLength int64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrManifest)
	}
	if m.Size <= 0 {
		return bad("partition size %d", m.Size)
	}
	if v03.NewHash(m.Method) == nil {
		return bad("identity method %q is not a digest", m.Method)
	}
	if len(m.Parts) == 0 {
		return bad("no partitions")
	}
	if int64(len(m.Parts)) > maxLength/m.Size+1 {
		return bad("%d partitions of %d bytes exceed %d bytes", len(m.Parts), m.Size, maxLength)
	}
	for i, p := range m.Parts {
		last := i == len(m.Parts)-1
		if p.Size <= 0 || p.Size > m.Size || (!last && p.Size != m.Size) {
			return bad("partition %d has %d bytes (partition size %d, %d partitions)", i, p.Size, m.Size, len(m.Parts))
		}
	}
	if m.Length() > maxLength {
		return bad("%d bytes exceed %d", m.Length(), maxLength)
	}
	return nil
}

// Key identifies the version of the file the manifest describes: equal
// manifests give equal keys.
func (m *Manifest) Key() string {
	h := sha256.New()
	var b [8]byte
	put := func(v int64) {
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	put(m.Size)
	io.WriteString(h, m.Method+"\x00")
	put(int64(len(m.Parts)))
	for _, p := range m.Parts {
		put(p.Size)
		io.WriteString(h, p.Identity+"\x00")
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Same reports whether partition i is the same in both manifests (same
// partition size, method, length and identity).
func (m *Manifest) Same(o *Manifest, i int) bool {
	return m.Size == o.Size && m.Method == o.Method && i < len(m.Parts) && i < len(o.Parts) && m.Parts[i] == o.Parts[i]
}

// Sum returns the identity of the n bytes of r at off, with method.
func Sum(method string, r io.ReaderAt, off, n int64) (string, error) {
	id, err := v03.Sum(method, io.NewSectionReader(r, off, n))
	if err != nil {
		return "", err
	}
	return id.Value, nil
}

// Make returns the manifest of the n bytes of r in partitions of size,
// with the identity method.
func Make(r io.ReaderAt, n, size int64, method string) (*Manifest, error) {
	if size <= 0 || v03.NewHash(method) == nil {
		return nil, fmt.Errorf("partition size %d, method %q: %w", size, method, ErrManifest)
	}
	m := &Manifest{Size: size, Method: method}
	for off := int64(0); off < n; off += size {
		l := min(size, n-off)
		id, err := Sum(method, r, off, l)
		if err != nil {
			return nil, fmt.Errorf("partition at %d: %w", off, err)
		}
		m.Parts = append(m.Parts, Part{Size: l, Identity: id})
	}
	return m, nil
}
