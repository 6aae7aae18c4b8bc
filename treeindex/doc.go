// Package treeindex reads and writes the tree index of a published
// directory tree: one streamable file that lists every directory, regular
// file and symbolic link of the tree with its size, mode, modification time,
// whole-file SHA-256 and the location of its zsync control file.
//
// The format is specified in docs/trees.md. In short, the index is a gzip
// stream (readers also accept it uncompressed) of JSON lines: a header line
// that names the format version, one line per entry in [Compare] order, and
// a trailer line that counts the entries and carries the SHA-256 of the
// entry lines, the index's content hash ([Reader.Sum]).
//
// Every path is checked with package relpath. A [Reader] refuses, while it
// streams, an index whose entries are unsafe, out of order, duplicated, or
// whose parent directory is not listed before them, so that a client that
// consumed all entries up to io.EOF has a tree that can be created below a
// root without leaving it. Memory is bounded by the depth of the tree, not
// by the number of entries.
package treeindex
