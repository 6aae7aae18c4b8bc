package indexer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Defaults of Options.
const (
	// DefaultSmall is the small-file threshold: shorter files get no
	// control file (clients fetch them whole).
	DefaultSmall = 16 << 10
	// DefaultPackMax is Options.PackMax's default: files with a control
	// file are packed (S2) up to 256 KiB.
	DefaultPackMax = 256 << 10
	// DefaultInline is the largest file whose content is inlined.
	DefaultInline = 256
	// DefaultSettle is the settle time of Watch.
	DefaultSettle = time.Second
	// DefaultRescan is the period of Watch's full rescan.
	DefaultRescan = 5 * time.Minute
	// DefaultRehash is, with Options.AppendOnly, the longest time a
	// growing file goes without being read whole.
	DefaultRehash = time.Hour
)

// ErrName reports a name in the tree that cannot be published safely. It is
// wrapped together with relpath.ErrUnsafe or a description of the clash.
var ErrName = errors.New("name cannot be published")

// Op is the kind of a Change.
type Op int

// Kinds of change.
const (
	Created Op = iota + 1 // a new entry
	Changed               // an entry whose content, mode, mtime or type changed
	Removed               // an entry that is gone
	Renamed               // a file that moved from OldPath to Path unchanged
)

// String returns "created", "changed", "removed" or "renamed".
func (o Op) String() string {
	switch o {
	case Created:
		return "created"
	case Changed:
		return "changed"
	case Removed:
		return "removed"
	case Renamed:
		return "renamed"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Change is one change of the published tree, passed to Options.OnChange.
type Change struct {
	Op Op
	// Path is the entry's path relative to the tree's root.
	Path string
	// OldPath is the previous path of a Renamed entry; "" otherwise.
	OldPath string
	// Entry is the new entry; for Removed, the entry last listed.
	Entry treeindex.Entry
}

// Item is what a Walker reports for one entry of the tree.
type Item struct {
	// Path is slash-separated and relative to the tree's root.
	Path string
	// Info is the entry's Lstat information.
	Info fs.FileInfo
	// Target is a symlink's target.
	Target string
}

// Walker walks the tree rooted at dir and calls emit for every entry, in
// treeindex.Compare order, each directory before its contents, without the
// root itself and without treeindex.Dir. WalkDir is the default.
type Walker func(ctx context.Context, dir string, emit func(Item) error) error

// Options configures Index and Watch.
type Options struct {
	// Beside writes control files beside their files (FILE.zsync) instead
	// of below treeindex.Dir.
	Beside bool
	// Legacy writes control files in the zsync 0.6.2 format.
	Legacy bool
	// Small is the small-file threshold; 0 means DefaultSmall, a negative
	// value gives every file a control file.
	Small int64
	// Inline is the size up to which file contents are inlined in the
	// index; 0 means DefaultInline, negative inlines nothing.
	Inline int64
	// Blocksize is the control files' block size; 0 chooses by length.
	Blocksize int
	// Workers is the number of files processed at once; 0 means one per
	// core. A large file is hashed on every core whatever this is.
	Workers int
	// NoSync skips flushing control files and the index to disk (they
	// are still written atomically). By default a control file that
	// replaces one is flushed before its rename, new ones together by one
	// syncfs before the index names them (Linux; one by one elsewhere),
	// and the index before its rename.
	NoSync bool
	// Settle leaves alone files modified less than Settle ago: they keep
	// their previous entry, or are not listed yet, and Result.Unsettled
	// counts them. Watch sets it.
	Settle time.Duration
	// Walk replaces the walk of the tree on disk; nil means WalkDir.
	Walk Walker
	// OnEntry, if set, is the caller's own sink: it receives every entry of
	// the new index, in walk order, as the pipeline produces it (control
	// files already written, the index not yet). The Pack of a file packed
	// in this pass is not set yet (its pack is named once complete). Its
	// error stops Index before the index is replaced.
	OnEntry func(context.Context, treeindex.Entry) error
	// OnChange, if set, is called for every change once the control file
	// and the index describing it are in place. Its error stops Index.
	OnChange func(context.Context, Change) error
	// Warn, if set, receives warnings (skipped special files, lost
	// events, passes of Watch that failed). It may be called from several
	// goroutines at once.
	Warn func(error)

	// AppendOnly declares that files which keep their inode and grow only
	// grow by appending (logs, sequencer output): such a file is re-indexed
	// by reading only its old last partial block and what follows, from
	// the block records and hash states kept beside its control file
	// (docs/trees.md, "Growing files"). A few old blocks are read again
	// to catch a file rewritten in place; a file is read whole at least
	// every Rehash.
	AppendOnly bool
	// Rehash is, with AppendOnly, the longest time a growing file goes
	// without being read whole; 0 means DefaultRehash.
	Rehash time.Duration

	// NoPacks writes no pack files: clients fetch every small file by its
	// path, one request each (docs/trees.md, "Packs").
	NoPacks bool
	// PackMax is the size up to which files that have a control file are
	// packed too, compressed with S2 (treeindex.PackS2: about a third of
	// zstd's CPU, records a third longer), so that a client may take a
	// changed file compressed and whole when that is shorter than its
	// missing blocks (plus what a rebuild costs beyond them); 0 means
	// DefaultPackMax, a negative value packs only the files without a
	// control file. At most treeindex.MaxPacked.
	PackMax int64
	// PackLarge packs files that have a control file up to
	// treeindex.MaxPacked bytes with zstd instead (records about a quarter
	// shorter than S2's, for three times the publisher's CPU: a full index
	// of a Go toolchain tree then takes 1.5 times as long; docs/trees.md,
	// "Packs").
	PackLarge bool
	// NoFrames writes no compressed frames (Entry.Frames): clients then
	// fetch the blocks a changed file lacks as they are. By default every
	// file with a control file that is not packed whole (larger than
	// PackMax) and whose frames take at most 9/10 of it gets them
	// (docs/trees.md, "Frames"); NoPacks implies NoFrames.
	NoFrames bool
	// PackGrace is how long a pack file that the index no longer refers
	// to is kept for clients still working from an earlier index; 0 means
	// DefaultPackGrace.
	PackGrace time.Duration

	// Rescan is how often Watch walks the whole tree even without events;
	// 0 means DefaultRescan.
	Rescan time.Duration
	// OnPass, if set, is called by Watch after every pass, with its result
	// (nil on failure) and error.
	OnPass func(*Result, error)
}

func (o *Options) small() int64 {
	switch {
	case o.Small == 0:
		return DefaultSmall
	case o.Small < 0:
		return 0
	}
	return o.Small
}

// packMax returns the size up to which files with a control file are
// packed (0: none).
func (o *Options) packMax() int64 {
	switch {
	case o.NoPacks || o.AppendOnly || o.PackMax < 0 && !o.PackLarge:
		return 0 // with AppendOnly, a grown file is read from its old end
	case o.PackLarge:
		return treeindex.MaxPacked
	case o.PackMax == 0:
		return DefaultPackMax
	}
	return min(o.PackMax, treeindex.MaxPacked)
}

func (o *Options) packGrace() time.Duration {
	if o.PackGrace <= 0 {
		return DefaultPackGrace
	}
	return o.PackGrace
}

func (o *Options) rehash() time.Duration {
	if o.Rehash <= 0 {
		return DefaultRehash
	}
	return o.Rehash
}

func (o *Options) inline() int64 {
	switch {
	case o.Inline == 0:
		return DefaultInline
	case o.Inline < 0:
		return -1
	}
	return min(o.Inline, treeindex.MaxInline)
}

// Result reports what one pass of Index did.
type Result struct {
	// Entries, Files and Bytes count the index's entries, its files and
	// their bytes.
	Entries, Files int
	Bytes          int64
	// Hashed counts the files read in this pass and HashedBytes the bytes
	// read from them; Controls the control files written; Extended the
	// files of those that grew and were read from their old end
	// (Options.AppendOnly).
	Hashed      int
	HashedBytes int64
	Controls    int
	Extended    int
	// Packed counts the small files whose content this pass wrote to a
	// new pack, Repacked those of them copied from a compacted pack,
	// PackBytes the bytes written to new packs, PacksRemoved the packs
	// removed after their grace period.
	Packed, Repacked int
	PackBytes        int64
	PacksRemoved     int
	// ControlsPacked counts the control files this pass wrote to a new
	// control pack (Entry.ControlPack; PackBytes includes them): those it
	// wrote, those of an index that predates control packs, and those
	// copied from a compacted control pack.
	ControlsPacked int
	// SumsPacked counts the block sums (Entry.Sums) this pass wrote to a
	// new sums pack: of the small files it read whose content does not
	// compress, and those copied from a compacted sums pack.
	SumsPacked int
	// Framed counts the files whose compressed frames this pass wrote,
	// FramesBytes the bytes of those frames.
	Framed      int
	FramesBytes int64
	// Changes is the number of changes (as passed to OnChange).
	Changes int
	// Unsettled counts files left alone because they changed too recently.
	Unsettled int
	// Skipped counts files left out because they cannot be opened
	// (permission denied, or a path that now leads out of the tree through
	// a symlink); each is reported through Options.Warn.
	Skipped int
	// Generation and Sum identify the index now in place; Written reports
	// whether this pass replaced it.
	Generation uint64
	Sum        []byte
	Written    bool
	// Duration is the pass's wall time.
	Duration time.Duration
}
