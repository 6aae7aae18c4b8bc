package zsyncpipe

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// The scan reads a kept file at block boundaries only where its chunk
// checksums (stages.Seed.ChunkSums) say a block looked for may be. A run
// learns those of the files it hashes (hashQueue) and of the kept files
// the scan reads whole, and keeps them for the next runs in
// MirrorStateDir/chunks, by content: the next run has them for every
// kept file whose content the state vouches for, without reading it.
// The file is a cache: a run that cannot read it reads the kept files,
// and sums that do not describe a file only lose what the scan would
// have found in it (the result is verified as always).

// chunksFile is the name of the chunk checksums' file in MirrorStateDir.
const chunksFile = "chunks"

// chunksMagic begins the chunk checksums' file. Then, per content: its
// SHA-256 (32 bytes), the number of checksums (uvarint) and the
// checksums (4 bytes each, little-endian).
const chunksMagic = "zsyncpipe chunk sums 1\n"

// maxChunksFile is the largest chunk checksums' file loadChunks reads:
// those of 128 GiB of files.
const maxChunksFile = 256 << 20

// loadChunks reads the chunk checksums kept in meta, by SHA-256 in hex;
// nil when there are none or the file is not whole.
func loadChunks(meta string) map[string][]uint32 {
	p := filepath.Join(meta, chunksFile)
	if fi, err := os.Stat(p); err != nil || fi.Size() > maxChunksFile {
		return nil
	}
	data, err := osfile.ReadRegular(context.Background(), p)
	if err != nil || !bytes.HasPrefix(data, []byte(chunksMagic)) {
		return nil
	}
	data = data[len(chunksMagic):]
	out := map[string][]uint32{}
	for len(data) > 0 {
		if len(data) < 32 {
			return nil
		}
		key := hex.EncodeToString(data[:32])
		n, k := binary.Uvarint(data[32:])
		data = data[32+max(k, 0):]
		if k <= 0 || n == 0 || n > uint64(len(data)/4) {
			return nil
		}
		sums := make([]uint32, n)
		for i := range sums {
			sums[i] = binary.LittleEndian.Uint32(data[4*i:])
		}
		out[key] = sums
		data = data[4*n:]
	}
	return out
}

// encodeChunks returns the file that keeps sums.
func encodeChunks(sums map[string][]uint32) []byte {
	n := len(chunksMagic)
	for _, s := range sums {
		n += 32 + binary.MaxVarintLen64 + 4*len(s)
	}
	out := make([]byte, 0, n)
	out = append(out, chunksMagic...)
	for key, s := range sums {
		raw, err := hex.DecodeString(key)
		if err != nil || len(raw) != 32 {
			continue
		}
		out = append(out, raw...)
		out = binary.AppendUvarint(out, uint64(len(s)))
		for _, v := range s {
			out = binary.LittleEndian.AppendUint32(out, v)
		}
	}
	return out
}

// chunkCollector assembles the chunk checksums the scan reports
// (seedscan.Options.ChunkSums) for the kept files it reads, a segment at
// a time, into the checksums of each whole file.
type chunkCollector struct {
	mu    sync.Mutex
	files map[int]*collected // by seed number
}

// collected is a file's checksums as the segments report them.
type collected struct {
	hex    string // the file's SHA-256
	sums   []uint32
	starts map[int64]bool // segments reported (the scans of several layouts report them again)
	have   int            // checksums reported
}

// expect has the collector take the reports of seed number seed, a kept
// file of size bytes whose content has the SHA-256 hx.
func (c *chunkCollector) expect(seed int, size int64, hx string) {
	if c.files == nil {
		c.files = map[int]*collected{}
	}
	c.files[seed] = &collected{hex: hx, sums: make([]uint32, (size+rollsum.ChunkSize-1)/rollsum.ChunkSize), starts: map[int64]bool{}}
}

// report takes the checksums of the chunks from offset start of seed.
func (c *chunkCollector) report(seed int, start int64, sums []uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.files[seed]
	i := start / rollsum.ChunkSize
	if f == nil || f.starts[start] || i+int64(len(sums)) > int64(len(f.sums)) {
		return
	}
	f.starts[start] = true
	copy(f.sums[i:], sums)
	f.have += len(sums)
}

// complete calls each with the checksums of every file all of whose
// chunks were reported.
func (c *chunkCollector) complete(each func(hx string, sums []uint32)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.files {
		if f.have == len(f.sums) {
			each(f.hex, f.sums)
		}
	}
}

// learnChunks records the chunk checksums of content hx, learnt this run.
func (m *mirrorRun) learnChunks(hx string, sums []uint32) {
	if hx == "" || len(sums) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.learnt == nil {
		m.learnt = map[string][]uint32{}
	}
	m.learnt[hx] = sums
}

// saveChunks keeps, for the next runs, the chunk checksums of the
// contents of the index's files of two chunks or more, learnt this run or
// kept by an earlier one, when that is not what the file holds already.
// The file is written atomically but not flushed (it is a cache); a
// failure is logged, not an error of the run.
func (m *mirrorRun) saveChunks() {
	kept := m.storedChunks()
	m.mu.Lock()
	learnt := m.learnt
	m.mu.Unlock()
	out := map[string][]uint32{}
	changed := false
	for i := range m.idx.Entries {
		e := &m.idx.Entries[i]
		if e.Type != treeindex.File || e.Size < 2*rollsum.ChunkSize || e.Data != nil {
			continue
		}
		hx := e.Hex()
		if _, ok := out[hx]; ok {
			continue
		}
		if s := learnt[hx]; s != nil {
			if kept[hx] == nil {
				changed = true
			}
			out[hx] = s
		} else if s := kept[hx]; s != nil {
			out[hx] = s
		}
	}
	if !changed && len(out) == len(kept) {
		return
	}
	if err := writeMeta(filepath.Join(m.meta, chunksFile), encodeChunks(out), true); err != nil {
		m.logf("mirror: keep the chunk checksums for the next run: %v", err)
	}
}
