package v03

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Partition methods (Blocks.Method).
const (
	// Inplace is what sr3 posts (blockSize > 1): the message announces
	// one partition, to be written at its offset in the file itself.
	Inplace = "inplace"
	// Separate is what sr3 writes into a message after downloading an
	// inplace partition into a file of its own (name§block_NNNN,SIZE_§).
	Separate = "separate"
)

// Errors of a partitioned message, returned wrapped together with
// ErrInvalid.
var (
	// ErrBlocksMethod: the partition method is not Inplace or Separate.
	ErrBlocksMethod = errors.New("unknown partition method")
	// ErrBlocksSize: the partition size is not positive or is larger
	// than the limit.
	ErrBlocksSize = errors.New("partition size out of range")
	// ErrBlocksNumber: the partition number is not an index of the
	// manifest.
	ErrBlocksNumber = errors.New("partition number out of range")
	// ErrBlocksManifest: the manifest is missing, has gaps, or disagrees
	// with the partition size, the message's size or its identity.
	ErrBlocksManifest = errors.New("inconsistent partition manifest")
)

// Blocks is sr3's "blocks" field: the message announces one partition of a
// file cut into partitions of Size bytes (the last one shorter), and
// carries the manifest of all of them. The message's size and identity are
// those of partition Number, not of the file, and relPath is the file's.
//
// On the wire (sr3 3.3.1 sarracenia/flowcb/gather/file.py):
//
//	"blocks": {"method": "inplace", "size": 2048, "number": 1,
//	  "manifest": {"0": {"size": 2048, "identity": "<base64>"},
//	               "1": {"size": 2048, "identity": "<base64>"},
//	               "2": {"size": 904, "identity": "<base64>"}}}
//
// The manifest's identity values use the message's identity method. sr3
// 3.3.1 does not hash exactly the partition: see SR3IdentityRange.
type Blocks struct {
	// Method is Inplace or Separate.
	Method string
	// Size is the partition size: every partition but the last has it.
	Size int64
	// Number is the index in Manifest of the partition announced.
	Number int64
	// Manifest lists every partition of the file in order; nil when the
	// field has no manifest (v02 "parts" converted by sr3).
	Manifest []Partition
	// Extra holds members this package does not know ("count",
	// "remainder" of converted v02 messages…), written back unchanged.
	Extra map[string]json.RawMessage
}

// Partition is one entry of a Blocks manifest.
type Partition struct {
	// Size is the partition's length in bytes.
	Size int64
	// Identity is the partition's checksum value, in the message's
	// identity method.
	Identity string
	// Extra holds members this package does not know.
	Extra map[string]json.RawMessage
}

// MarshalJSON writes the members in sr3's order: method, size, number,
// manifest, then unknown members.
func (b Blocks) MarshalJSON() ([]byte, error) {
	var o object
	o.add("method", b.Method)
	o.add("size", b.Size)
	o.add("number", b.Number)
	if b.Manifest != nil {
		var m object
		for i, p := range b.Manifest {
			m.add(strconv.Itoa(i), p)
		}
		mb, err := m.bytes()
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		o.raw("manifest", mb)
	}
	o.extra(b.Extra)
	return o.bytes()
}

// MarshalJSON writes {"size": n, "identity": "…"} and unknown members.
func (p Partition) MarshalJSON() ([]byte, error) {
	var o object
	o.add("size", p.Size)
	o.add("identity", p.Identity)
	o.extra(p.Extra)
	return o.bytes()
}

// UnmarshalJSON reads a blocks object. The manifest's keys must be the
// decimal numbers 0 to n-1, each once (ErrBlocksManifest otherwise).
func (b *Blocks) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("blocks is null")
	}
	*b = Blocks{}
	for k, raw := range m {
		var err error
		switch k {
		case "method":
			err = json.Unmarshal(raw, &b.Method)
		case "size":
			b.Size, err = decodeInt(raw)
		case "number":
			b.Number, err = decodeInt(raw)
		case "manifest":
			b.Manifest, err = decodeManifest(raw)
		default:
			if b.Extra == nil {
				b.Extra = map[string]json.RawMessage{}
			}
			b.Extra[k] = append(json.RawMessage(nil), raw...)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func decodeManifest(raw json.RawMessage) ([]Partition, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, nil
	}
	out := make([]Partition, len(m))
	for k, v := range m {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(m) || strconv.Itoa(i) != k {
			return nil, fmt.Errorf("key %.20q of %d entries: %w", k, len(m), ErrBlocksManifest)
		}
		if err := json.Unmarshal(v, &out[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return out, nil
}

// UnmarshalJSON reads a manifest entry.
func (p *Partition) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("partition is null")
	}
	*p = Partition{}
	for k, raw := range m {
		var err error
		switch k {
		case "size":
			p.Size, err = decodeInt(raw)
		case "identity":
			var s *string
			err = json.Unmarshal(raw, &s)
			if s != nil {
				p.Identity = *s
			}
		default:
			if p.Extra == nil {
				p.Extra = map[string]json.RawMessage{}
			}
			p.Extra[k] = append(json.RawMessage(nil), raw...)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// decodeInt reads a JSON integer, or a string holding one (sr3 accepts
// both for size).
func decodeInt(raw json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if err2 := json.Unmarshal(raw, &s); err2 != nil {
			return 0, err
		}
		n = json.Number(s)
	}
	return strconv.ParseInt(n.String(), 10, 64)
}

// Range returns the offset and length in the file of the partition
// announced, from the manifest (as sr3's downloader computes it). Call it
// on a validated Blocks.
func (b *Blocks) Range() (offset, length int64) {
	if b.Number < 0 || b.Number >= int64(len(b.Manifest)) {
		return 0, 0
	}
	return b.Number * b.Size, b.Manifest[b.Number].Size
}

// FileSize returns the size of the whole file: the sum of the manifest's
// sizes. Call it on a validated Blocks.
func (b *Blocks) FileSize() int64 {
	var n int64
	for _, p := range b.Manifest {
		n += p.Size
	}
	return n
}

// SR3BufSize is sr3's default bufSize option, which SR3IdentityRange
// depends on.
const SR3BufSize = 1 << 20

// SR3IdentityRange returns the bytes that sr3 3.3.1 hashes for the
// identity of partition i, given sr3's bufSize (0 means SR3BufSize): its
// Message.computeIdentity reads from the partition's offset in bufSize
// reads until it has read offset+length bytes or the file ends, so it
// hashes the partition only for the last partition (and for partition 0
// when bufSize divides the partition size); otherwise it hashes more.
// Call it on a validated Blocks.
func (b *Blocks) SR3IdentityRange(i, bufSize int64) (offset, length int64) {
	if bufSize <= 0 {
		bufSize = SR3BufSize
	}
	if i < 0 || i >= int64(len(b.Manifest)) {
		return 0, 0
	}
	offset = i * b.Size
	want := offset + b.Manifest[i].Size
	read := (want + bufSize - 1) / bufSize * bufSize
	length = min(read, b.FileSize()-offset)
	return offset, length
}

// validate checks b for a message of size msgSize (-1 when absent) and
// identity id (nil when absent), with files up to maxSize.
func (b *Blocks) validate(msgSize int64, id *Identity, maxSize int64) error {
	bad := func(sentinel error, format string, args ...any) error {
		return fmt.Errorf("blocks: %s: %w: %w", fmt.Sprintf(format, args...), sentinel, ErrInvalid)
	}
	if b.Method != Inplace && b.Method != Separate {
		return bad(ErrBlocksMethod, "method %.40q", b.Method)
	}
	if b.Size <= 0 || b.Size > maxSize {
		return bad(ErrBlocksSize, "size %d not in [1, %d]", b.Size, maxSize)
	}
	n := int64(len(b.Manifest))
	if n == 0 {
		return bad(ErrBlocksManifest, "no manifest")
	}
	if b.Number < 0 || b.Number >= n {
		return bad(ErrBlocksNumber, "number %d not in [0, %d)", b.Number, n)
	}
	if n-1 > maxSize/b.Size {
		return bad(ErrBlocksManifest, "%d partitions of %d bytes, more than %d bytes", n, b.Size, maxSize)
	}
	digest, isDigest := 0, false
	if id != nil {
		digest, isDigest = digestLen[id.Method]
	}
	for i, p := range b.Manifest {
		last := int64(i) == n-1
		if (!last && p.Size != b.Size) || (last && (p.Size <= 0 || p.Size > b.Size)) {
			return bad(ErrBlocksManifest, "partition %d of %d bytes, partition size %d", i, p.Size, b.Size)
		}
		if isDigest {
			v, err := base64.StdEncoding.DecodeString(p.Identity)
			if err != nil || len(v) != digest {
				return bad(ErrBlocksManifest, "partition %d identity %.80q is not a base64 %s digest", i, p.Identity, id.Method)
			}
		} else if len(p.Identity) > 1024 {
			return bad(ErrBlocksManifest, "partition %d identity of %d bytes", i, len(p.Identity))
		}
	}
	if total := b.FileSize(); total > maxSize {
		return bad(ErrBlocksManifest, "file of %d bytes, more than %d", total, maxSize)
	}
	cur := b.Manifest[b.Number]
	if msgSize >= 0 && msgSize != cur.Size {
		return bad(ErrBlocksManifest, "message size %d, partition %d has %d", msgSize, b.Number, cur.Size)
	}
	if id != nil && isDigest && id.Value != cur.Identity {
		return bad(ErrBlocksManifest, "message identity is not partition %d's", b.Number)
	}
	return nil
}
