// Package strong names the strong block hashes a zsync control file may use
// (MD4, MD5, SHA-224) and makes hashes of them. It is a leaf package shared by
// the control-file format (package control) and the batch hashers (package
// simd), so that neither depends on the other.
package strong

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"hash"
	"strings"

	//lint:ignore SA1019 zsync 0.6.2 control files use MD4 block hashes; the format needs it.
	"golang.org/x/crypto/md4"
)

// Algorithm names a strong block hash used in zsync control files.
type Algorithm uint8

// The strong hashes a control file may use. MD4 is what zsync 0.6.2 and every
// control file without a Strong-Hash-Algorithm header use; spec 0.8 adds MD5
// and SHA-224.
const (
	MD4 Algorithm = iota + 1
	MD5
	SHA224
)

// String returns the name used in the Strong-Hash-Algorithm header.
func (a Algorithm) String() string {
	switch a {
	case MD4:
		return "MD4"
	case MD5:
		return "MD5"
	case SHA224:
		return "SHA-224"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// Size returns the length of the algorithm's full digest in bytes, or 0 for
// an unknown algorithm.
func (a Algorithm) Size() int {
	switch a {
	case MD4, MD5:
		return 16
	case SHA224:
		return sha256.Size224
	}
	return 0
}

// New returns a fresh hash.Hash computing the algorithm, or nil for an
// unknown algorithm.
func (a Algorithm) New() hash.Hash {
	switch a {
	case MD4:
		return md4.New()
	case MD5:
		return md5.New()
	case SHA224:
		return sha256.New224()
	}
	return nil
}

// ParseAlgorithm parses a Strong-Hash-Algorithm header value. Matching is
// case-insensitive and accepts "SHA224" for "SHA-224".
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "MD4":
		return MD4, nil
	case "MD5":
		return MD5, nil
	case "SHA-224", "SHA224":
		return SHA224, nil
	}
	return 0, fmt.Errorf("unknown strong hash algorithm %q", s)
}
