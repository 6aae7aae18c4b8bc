// Package control reads and writes zsync control files (".zsync").
//
// A control file is a header of "Name: value" lines, each ended by a single
// LF, an empty line, and then one binary record per block of the target
// file: the trailing RsumBytes of the block's big-endian rolling checksum
// (a, b) followed by the leading StrongBytes of its strong hash. The last,
// short block is zero-padded to a full block before both are computed.
//
// # Two generations
//
// Legacy files are what Debian's zsync and zsyncmake 0.6.2 write and read:
// MD4 block hashes and a whole-file "SHA-1:". A zsync 0.6.2 client rejects
// any header it does not know unless the header's name is a substring of a
// "Safe:" value.
//
// Spec 0.8 files (the format published with zsync 0.7.x) may add
// "Strong-Hash-Algorithm: MD5" or "SHA-224" and a whole-file
// "File-Hash: SHA-256:<hex>". File-Hash is listed in "Safe:" so that 0.6.2
// clients ignore it; Strong-Hash-Algorithm is never listed as safe unless it
// is MD4, so that 0.6.2 clients refuse records they would misread.
//
// Use a legacy file (StrongAlgorithm MD4, no SHA256; see Header.Legacy) when
// the file must be usable by zsync 0.6.2 clients, which is most deployed
// zsync clients. A file with MD4 block hashes and both SHA-1 and SHA-256 is
// still readable by 0.6.2. Use MD5 or SHA-224 block hashes only when every
// client understands spec 0.8. Write produces legacy files byte for byte
// like zsyncmake 0.6.2 does for the same field values.
//
// # Reading
//
// Read and ReadHeader are strict: they follow the rules of 0.6.2 where those
// are sound (trailing CR and spaces are stripped from header lines, a blank
// line must be a bare LF, unknown headers are an error unless named in Safe)
// and additionally reject malformed values that 0.6.2 would silently ignore,
// such as a short SHA-1. Errors describing the content of the file are
// *FormatError values. Nothing is allocated in proportion to a number read
// from the file before the corresponding data has arrived.
//
// The deprecated gzip look-inside headers Z-URL, Z-Filename and Recompress
// are kept in Header.Extra; a Z-Map2 header and its inline binary map are
// skipped and not kept, since this package does not support gzip
// look-inside.
//
// # Block sums
//
// EncodeSums and DecodeSums write and read the block records of a control
// file without its text header, behind six bytes of layout: what a tree
// index refers to for small files whose length and SHA-256 it already
// holds (docs/trees.md, "Packs").
package control
