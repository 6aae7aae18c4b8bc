package control

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/zsyncpipe/zsyncpipe/strong"
)

// Versions written in the "zsync" header when Header.Version is empty.
const (
	// LegacyVersion is what zsyncmake 0.6.2 writes; used for legacy files.
	LegacyVersion = "0.6.2"
	// SpecVersion is what zsync 0.7.x writes; used for spec 0.8 files.
	SpecVersion = "0.7.2"
)

// Legacy reports whether the header describes a file that zsync 0.6.2 fully
// understands: MD4 block hashes and no SHA-256 whole-file hash.
func (h *Header) Legacy() bool {
	return h.StrongAlgorithm == strong.MD4 && h.SHA256 == nil
}

// Validate checks the header against the rules Read applies, so that a
// header that passes can be written and read back unchanged. An empty
// Version is allowed: Write fills it in. Errors are *FormatError values
// with Line 0.
func (h *Header) Validate() error {
	bad := func(name string, err error) error { return &FormatError{Name: name, Err: err} }
	if h.Version != "" {
		if err := checkValue(hdrVersion, h.Version); err != nil {
			return bad(hdrVersion, err)
		}
		if err := checkVersion(h.Version); err != nil {
			return bad(hdrVersion, err)
		}
	}
	if h.MinVersion != "" {
		if err := checkValue(hdrMinVersion, h.MinVersion); err != nil {
			return bad(hdrMinVersion, err)
		}
	}
	if h.Filename != "" {
		if err := checkValue(hdrFilename, h.Filename); err != nil {
			return bad(hdrFilename, err)
		}
		if err := checkFilename(h.Filename); err != nil {
			return bad(hdrFilename, err)
		}
	}
	if !h.MTime.IsZero() {
		if y := h.MTime.UTC().Year(); y < 0 || y > 9999 {
			return bad(hdrMTime, fmt.Errorf("year %d cannot be written", y))
		}
	}
	if err := checkBlocksize(int64(h.Blocksize)); err != nil {
		return bad(hdrBlocksize, err)
	}
	if h.Length < 0 {
		return bad(hdrLength, fmt.Errorf("negative: %d", h.Length))
	}
	if err := checkHashLengths(h.HashLengths, h.StrongAlgorithm); err != nil {
		return bad(hdrHashLen, err)
	}
	for _, u := range h.URLs {
		if err := checkValue(hdrURL, u); err != nil {
			return bad(hdrURL, err)
		}
	}
	if h.SHA1 != nil && len(h.SHA1) != 20 {
		return bad(hdrSHA1, fmt.Errorf("want 20 bytes, got %d", len(h.SHA1)))
	}
	if h.SHA256 != nil && len(h.SHA256) != 32 {
		return bad(hdrFileHash, fmt.Errorf("SHA-256: want 32 bytes, got %d", len(h.SHA256)))
	}
	if h.SHA256Chain != nil {
		if err := h.SHA256Chain.check(h); err != nil {
			return bad(hdrChain, err)
		}
	}
	for _, s := range h.Safe {
		if s == "" || s != strings.Trim(s, ",") || strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsRune(s, 0) {
			return bad(hdrSafe, fmt.Errorf("not a single header name: %q", s))
		}
	}
	safe := strings.Join(h.safeList(), ",")
	if err := checkValue(hdrSafe, safe); safe != "" && err != nil {
		return bad(hdrSafe, err)
	}
	if err := checkSafe(safe, h.StrongAlgorithm); err != nil {
		return bad(hdrSafe, err)
	}
	for _, f := range h.Extra {
		if err := checkName(f.Name); err != nil {
			return bad(f.Name, err)
		}
		if err := checkValue(f.Name, f.Value); err != nil {
			return bad(f.Name, err)
		}
		switch {
		case isInterpreted(f.Name):
			return bad(f.Name, errors.New("has a dedicated Header field and cannot be in Extra"))
		case f.Name == hdrFileHash:
			if isSHA256FileHash(f.Value) {
				return bad(f.Name, errors.New("a SHA-256 File-Hash belongs in Header.SHA256, not Extra"))
			}
		case f.Name == hdrChain && isSHA256Chain(f.Value):
			return bad(f.Name, errors.New("a SHA-256 Hash-Chain belongs in Header.SHA256Chain, not Extra"))
		case f.Name == hdrZURL, f.Name == hdrZFilename, f.Name == hdrRecompress:
		default:
			if !strings.Contains(safe, f.Name) {
				return bad(f.Name, errors.New("unknown header not listed in Safe"))
			}
		}
	}
	return nil
}

// safeList returns the names for the Safe header: h.Safe, plus File-Hash
// when the file has a File-Hash header and h.Safe does not cover it, and
// Hash-Chain likewise.
func (h *Header) safeList() []string {
	needFileHash := h.SHA256 != nil
	for _, f := range h.Extra {
		if f.Name == hdrFileHash {
			needFileHash = true
		}
	}
	list := h.Safe[:len(h.Safe):len(h.Safe)]
	if needFileHash && !strings.Contains(strings.Join(h.Safe, ","), hdrFileHash) {
		list = append(list, hdrFileHash)
	}
	if h.SHA256Chain != nil && !strings.Contains(strings.Join(h.Safe, ","), hdrChain) {
		list = append(list, hdrChain)
	}
	return list
}

// checkName checks the name of an Extra field.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	if strings.ContainsAny(name, ":\n\x00") {
		return fmt.Errorf("header name contains ':', LF or NUL: %q", name)
	}
	return nil
}

// checkValue checks that value survives being written and read back.
func checkValue(name, value string) error {
	switch {
	case value == "":
		return errors.New("empty value")
	case strings.ContainsAny(value, "\n\x00"):
		return errors.New("value contains LF or NUL")
	case strings.HasSuffix(value, " ") || strings.HasSuffix(value, "\r"):
		return errors.New("value ends in a space or CR, which readers strip")
	case len(name)+2+len(value) > MaxLineLength:
		return fmt.Errorf("line longer than %d bytes", MaxLineLength)
	}
	return nil
}

// Write writes f as a control file: the header, then one record per block.
//
// Header fields are written in zsyncmake 0.6.2's order, so a legacy file
// comes out byte for byte as zsyncmake writes it for the same values:
// zsync, [Min-Version], [Safe], [Filename], [MTime], Blocksize, Length,
// Hash-Lengths, [Strong-Hash-Algorithm], URL..., [SHA-1], [File-Hash],
// [Hash-Chain], Extra..., empty line. Strong-Hash-Algorithm is written only when it is not
// MD4. When the file has a File-Hash header and Safe does not cover it,
// "File-Hash" is appended to the written Safe list, and "Hash-Chain" when
// it has a SHA256Chain; the list is written comma-separated. An empty Version is
// written as LegacyVersion for legacy files and SpecVersion otherwise.
// MTime is written in UTC with whole seconds; a zero MTime is omitted.
//
// Write validates f first (see Header.Validate; the checksums must match
// the header) and writes nothing if it is invalid.
func Write(w io.Writer, f *File) error {
	if f == nil {
		return errors.New("control: Write: nil File")
	}
	h := &f.Header
	if err := h.Validate(); err != nil {
		return err
	}
	if err := checkChecksums(h, &f.Checksums); err != nil {
		return err
	}

	var hb strings.Builder
	line := func(name, value string) {
		hb.WriteString(name)
		hb.WriteString(": ")
		hb.WriteString(value)
		hb.WriteByte('\n')
	}
	version := h.Version
	if version == "" {
		version = SpecVersion
		if h.Legacy() {
			version = LegacyVersion
		}
	}
	line(hdrVersion, version)
	if h.MinVersion != "" {
		line(hdrMinVersion, h.MinVersion)
	}
	if safe := h.safeList(); len(safe) > 0 {
		// Comma-separated, no spaces: zsync 0.7.x splits on commas, 0.6.2
		// looks for substrings.
		line(hdrSafe, strings.Join(safe, ","))
	}
	if h.Filename != "" {
		line(hdrFilename, h.Filename)
	}
	if !h.MTime.IsZero() {
		line(hdrMTime, h.MTime.UTC().Format(MTimeLayout))
	}
	line(hdrBlocksize, strconv.Itoa(h.Blocksize))
	line(hdrLength, strconv.FormatInt(h.Length, 10))
	hl := h.HashLengths
	line(hdrHashLen, fmt.Sprintf("%d,%d,%d", hl.SeqMatches, hl.RsumBytes, hl.StrongBytes))
	if h.StrongAlgorithm != strong.MD4 {
		line(hdrStrongAlg, h.StrongAlgorithm.String())
	}
	for _, u := range h.URLs {
		line(hdrURL, u)
	}
	if h.SHA1 != nil {
		line(hdrSHA1, hex.EncodeToString(h.SHA1))
	}
	if h.SHA256 != nil {
		line(hdrFileHash, sha256Prefix+hex.EncodeToString(h.SHA256))
	}
	if h.SHA256Chain != nil {
		line(hdrChain, h.SHA256Chain.value())
	}
	for _, e := range h.Extra {
		line(e.Name, e.Value)
	}
	hb.WriteByte('\n')
	if hb.Len() > MaxHeaderSize {
		return &FormatError{Err: fmt.Errorf("header longer than %d bytes", MaxHeaderSize)}
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(hb.String()); err != nil {
		return fmt.Errorf("control: writing header: %w", err)
	}
	c := &f.Checksums
	rb, sb := c.RsumBytes, c.StrongBytes
	var rec [4 + 64]byte
	for i, v := range c.Rsum {
		for k := 0; k < rb; k++ {
			rec[k] = byte(v >> (8 * uint(rb-1-k)))
		}
		copy(rec[rb:], c.Strong[i*sb:(i+1)*sb])
		if _, err := bw.Write(rec[:rb+sb]); err != nil {
			return fmt.Errorf("control: writing block record %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("control: writing block records: %w", err)
	}
	return nil
}

// checkChecksums checks that c holds exactly the records h describes.
func checkChecksums(h *Header, c *Checksums) error {
	bad := func(err error) error { return &FormatError{Name: "Checksums", Err: err} }
	hl := h.HashLengths
	if c.RsumBytes != hl.RsumBytes || c.StrongBytes != hl.StrongBytes {
		return bad(fmt.Errorf("record layout %d,%d differs from Hash-Lengths %d,%d",
			c.RsumBytes, c.StrongBytes, hl.RsumBytes, hl.StrongBytes))
	}
	if int64(len(c.Rsum)) != h.Blocks() {
		return bad(fmt.Errorf("have %d block records, Length and Blocksize need %d", len(c.Rsum), h.Blocks()))
	}
	if len(c.Strong) != len(c.Rsum)*c.StrongBytes {
		return bad(fmt.Errorf("have %d strong hash bytes, want %d", len(c.Strong), len(c.Rsum)*c.StrongBytes))
	}
	mask := RsumMask(c.RsumBytes)
	for i, v := range c.Rsum {
		if v&^mask != 0 {
			return bad(fmt.Errorf("block %d: rolling checksum %#x has bits outside the %d stored bytes", i, v, c.RsumBytes))
		}
	}
	return nil
}
