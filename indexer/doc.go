// Package indexer publishes a directory tree: it keeps, below the tree's
// root, a zsync control file for every large regular file and a tree index
// (package treeindex) that lists the whole tree, and keeps them current.
//
// Index runs one incremental pass as a pipeline: a walk of the tree (or the
// caller's own Walker) → a stage that, on every core, compares each entry
// with the previous index and hashes, or makes the control file of, only
// what changed (each large file with the parallel make pipeline of package
// zsyncpipe) → a sink that writes the new index. Control files are in place
// before the index that names them, and control files of removed files go
// only after it (docs/trees.md). Watch repeats Index as fsnotify reports
// changes, with a periodic rescan as a safety net.
//
// Callers learn about changes through Options.OnChange, called after the
// control file and the index describing the change are in place.
package indexer
