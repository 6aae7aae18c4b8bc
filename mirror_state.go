package zsyncpipe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

// MirrorStateDir is the directory, at the root of a mirrored tree, where
// Mirror keeps its state: the last index, what it knows of the local files,
// and partial results. It is never listed by an index Mirror accepts and
// never deleted by --delete.
const MirrorStateDir = ".zsyncpipe-mirror"

// mirrorState is what a mirror remembers between runs, stored as JSON in
// MirrorStateDir/state.json.
type mirrorState struct {
	Version int `json:"version"`
	// URL is the tree whose index IndexModified and Generation describe.
	// Files does not depend on it: a state written for another URL keeps
	// its Files (see loadMirrorState).
	URL string `json:"url"`
	// IndexModified is the Last-Modified of the cached index
	// (MirrorStateDir/index), sent as If-Modified-Since.
	IndexModified time.Time `json:"index_modified,omitzero"`
	// Generation is the cached index's generation.
	Generation uint64 `json:"generation"`
	// Files maps the path of every local file whose content is known to
	// its size, mtime and SHA-256 as they were when it was last verified.
	Files map[string]fileState `json:"files"`
}

// fileState is a local file as last verified.
type fileState struct {
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtime"` // Unix nanoseconds
	SHA256 string `json:"sha256"`
}

const mirrorStateVersion = 1

// loadMirrorState reads the state of the mirror in meta for the tree at
// url: an empty one when there is none or it cannot be read, only its
// Files when it was written for another URL.
func loadMirrorState(meta, url string) *mirrorState {
	st := &mirrorState{Version: mirrorStateVersion, URL: url, Files: map[string]fileState{}}
	data, err := osfile.ReadRegular(context.Background(), filepath.Join(meta, "state.json"))
	if err != nil {
		return st
	}
	var old mirrorState
	if json.Unmarshal(data, &old) != nil || old.Version != mirrorStateVersion || old.Files == nil {
		return st
	}
	if old.URL != url {
		// What it knows of the local files holds whatever tree they
		// came from (a file's size, mtime and content); what it knows of
		// the index (its validator, its generation) belongs to the other
		// URL. So a tree mirrored from a URL per release is updated from
		// the next release's URL without reading its unchanged files.
		st.Files = old.Files
		return st
	}
	return &old
}

// hashOf returns the SHA-256 recorded for rel when the file is still the one
// that was verified (same size and mtime), else "".
func (st *mirrorState) hashOf(rel string, fi os.FileInfo) string {
	f, ok := st.Files[rel]
	if !ok || !fi.Mode().IsRegular() || f.Size != fi.Size() || f.MTime != fi.ModTime().UnixNano() {
		return ""
	}
	return f.SHA256
}

// save writes the state atomically; flushed to disk before it replaces
// the last one unless noSync (a run with NoFsync flushes none of the
// files the state describes either).
func (st *mirrorState) save(meta string, noSync bool) error {
	data, err := st.encode()
	if err != nil {
		return err
	}
	return writeMeta(filepath.Join(meta, "state.json"), data, noSync)
}

// writeMeta writes one of the mirror's own files atomically.
func writeMeta(p string, data []byte, noSync bool) error {
	_, err := atomicfile.WriteOptions(p, atomicfile.Options{NoSync: noSync}, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("mirror: save state: %w", err)
	}
	return nil
}

// encode returns the state as json.Marshal does, byte for byte, in a
// fifth of its time: the map of files is written by hand (json.Marshal
// reflects on each of 10,000 entries and took 27-30 ms for a Go tree, at
// the end of every run), each path and hash as it is when it needs no
// escaping and through json.Marshal when it does.
func (st *mirrorState) encode() ([]byte, error) {
	files := st.Files
	head := *st
	head.Files = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return nil, err
	}
	// b ends with "files":null}
	const null = `null}`
	if !bytes.HasSuffix(b, []byte(null)) || files == nil {
		return json.Marshal(st)
	}
	keys := make([]string, 0, len(files))
	n := len(b)
	for k, f := range files {
		keys = append(keys, k)
		n += len(k) + len(f.SHA256) + 70
	}
	slices.Sort(keys)
	out := make([]byte, 0, n)
	out = append(out, b[:len(b)-len(null)]...)
	out = append(out, '{')
	for i, k := range keys {
		f := files[k]
		if i > 0 {
			out = append(out, ',')
		}
		if out, err = appendJSONString(out, k); err != nil {
			return nil, err
		}
		out = append(out, `:{"size":`...)
		out = strconv.AppendInt(out, f.Size, 10)
		out = append(out, `,"mtime":`...)
		out = strconv.AppendInt(out, f.MTime, 10)
		out = append(out, `,"sha256":`...)
		if out, err = appendJSONString(out, f.SHA256); err != nil {
			return nil, err
		}
		out = append(out, '}')
	}
	return append(out, "}}"...), nil
}

// appendJSONString appends s as json.Marshal writes it: as it is when
// it is printable ASCII that json.Marshal does not escape.
func appendJSONString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			return append(b, q...), err
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// mirrorDone records the last run that finished with Dir matching its index
// (MirrorStateDir/done, a few bytes). When the server answers that the index
// has not changed since, the next run ends after that one request, without
// reading the state or the cached index or looking at Dir.
type mirrorDone struct {
	URL           string    `json:"url"`
	IndexModified time.Time `json:"index_modified"`
	Generation    uint64    `json:"generation"`
	// Delete reports that the run removed what the index does not list.
	Delete bool `json:"delete"`
	// Files counts the regular files of the index.
	Files int `json:"files"`
}

const doneFile = "done"

// loadMirrorDone returns the record of the last complete run from url, or
// nil.
func loadMirrorDone(meta, url string) *mirrorDone {
	data, err := osfile.ReadRegular(context.Background(), filepath.Join(meta, doneFile))
	if err != nil {
		return nil
	}
	var d mirrorDone
	if json.Unmarshal(data, &d) != nil || d.URL != url || d.IndexModified.IsZero() {
		return nil
	}
	return &d
}

// save writes the record atomically (flushed unless noSync, as the
// state).
func (d *mirrorDone) save(meta string, noSync bool) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return writeMeta(filepath.Join(meta, doneFile), data, noSync)
}

// removeMirrorDone forgets the last complete run, before Dir changes.
func removeMirrorDone(meta string) error {
	if err := os.Remove(filepath.Join(meta, doneFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mirror: %w", err)
	}
	return nil
}
