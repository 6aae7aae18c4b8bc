package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/dustin/go-humanize"
)

// Edits counts the changes that Versions applied to the old version to make
// the new one.
type Edits struct {
	// Inserts, Deletes, Overwrites and Moves count the edits of each kind.
	Inserts, Deletes, Overwrites, Moves int
	// InsertBytes, DeleteBytes, OverwriteBytes and MoveBytes count the
	// bytes they touched.
	InsertBytes, DeleteBytes, OverwriteBytes, MoveBytes int64
}

// String returns a one-line description, e.g. "12 inserts (80 KiB), ...".
func (e Edits) String() string {
	f := func(n int, what string, b int64) string {
		return fmt.Sprintf("%d %s (%s)", n, what, humanize.IBytes(uint64(b)))
	}
	return strings.Join([]string{
		f(e.Inserts, "inserts", e.InsertBytes),
		f(e.Deletes, "deletes", e.DeleteBytes),
		f(e.Overwrites, "overwrites", e.OverwriteBytes),
		f(e.Moves, "moves", e.MoveBytes),
	}, ", ")
}

// editsPerVersion is about how many edits Versions makes, whatever the size.
const editsPerVersion = 48

// Versions returns an old and a new version of a sample data set of about
// size bytes, and the edits that turn the old into the new. The data looks
// like an archive of source files: records of generated text lines mixed with
// records of incompressible bytes. The new version is the old one with
// inserts, deletes and overwrites of up to 16 KiB and moves of up to 128 KiB
// spread over the whole file. The same seed and size always give the same
// bytes.
func Versions(seed uint64, size int) (old, new []byte, edits Edits) {
	size = max(size, 0)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &generator{r: r}
	old = g.data(make([]byte, 0, size+64<<10), size)
	old = old[:size:size]

	ed := &editor{r: r, g: g, old: old, out: make([]byte, 0, size+size/16)}
	ed.run()
	return old, ed.out, ed.edits
}

// generator produces sample data.
type generator struct {
	r    *rand.Rand
	file int
}

// words is the vocabulary of the generated text.
var words = strings.Fields(`
	the of and to in is that for it as with was on be by this are or from at
	which but not have an they you were their one all we can her has there
	been if more when will would who so no func return err nil if else for
	range package import type struct interface map chan go defer select case
	block checksum rolling strong hash seed target control header record
	offset length range request fetch verify match scan write read buffer
	pipeline stage worker batch lane vector byte file directory archive`)

// data appends at least n bytes of sample records to b.
func (g *generator) data(b []byte, n int) []byte {
	end := len(b) + n
	for len(b) < end {
		g.file++
		size := 512 + g.r.IntN(64<<10)
		if g.r.IntN(10) < 3 {
			b = fmt.Appendf(b, "== %06d.bin %d ==\n", g.file, size)
			b = g.binary(b, size)
		} else {
			b = fmt.Appendf(b, "== %06d.txt %d ==\n", g.file, size)
			b = g.text(b, size)
		}
	}
	return b
}

// fresh appends n bytes of new data, text or binary, to b.
func (g *generator) fresh(b []byte, n int) []byte {
	if g.r.IntN(2) == 0 {
		return g.binary(b, n)
	}
	return g.text(b, n)
}

// binary appends n random bytes to b.
func (g *generator) binary(b []byte, n int) []byte {
	for n >= 8 {
		v := g.r.Uint64()
		b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24),
			byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
		n -= 8
	}
	for ; n > 0; n-- {
		b = append(b, byte(g.r.Uint32()))
	}
	return b
}

// text appends exactly n bytes of text lines to b.
func (g *generator) text(b []byte, n int) []byte {
	end := len(b) + n
	col := 0
	for len(b) < end {
		w := words[g.r.IntN(len(words))]
		switch {
		case col+len(w) >= 72:
			b = append(b, '\n')
			col = 0
		case col > 0:
			b = append(b, ' ')
			col++
		}
		b = append(b, w...)
		col += len(w)
		if g.r.IntN(40) == 0 {
			b = fmt.Appendf(b, " %d", g.r.IntN(100000))
		}
	}
	return b[:end]
}

// span is the half-open range [start, end) of the old version.
type span struct{ start, end int }

// editor builds the new version from the old one.
type editor struct {
	r     *rand.Rand
	g     *generator
	old   []byte
	out   []byte
	moved []span // parts of old already moved to an earlier place in out
	edits Edits
}

// run walks the old version, keeping long stretches and editing between
// them.
func (e *editor) run() {
	meanKeep := max(len(e.old)/editsPerVersion, 4<<10)
	pos := 0
	for pos < len(e.old) {
		end := min(pos+e.r.IntN(2*meanKeep), len(e.old))
		e.keep(pos, end)
		pos = end
		if pos >= len(e.old) {
			break
		}
		n := 1 + e.r.IntN(1+e.r.IntN(16<<10)) // mostly small, up to 16 KiB
		switch e.r.IntN(4) {
		case 0:
			e.out = e.g.fresh(e.out, n)
			e.edits.Inserts++
			e.edits.InsertBytes += int64(n)
		case 1:
			n = min(n, len(e.old)-pos)
			pos += n
			e.edits.Deletes++
			e.edits.DeleteBytes += int64(n)
		case 2:
			n = min(n, len(e.old)-pos)
			e.out = e.g.fresh(e.out, n)
			pos += n
			e.edits.Overwrites++
			e.edits.OverwriteBytes += int64(n)
		case 3:
			e.move(pos)
		}
	}
}

// move moves a part of the old version that lies after pos to the current
// end of the output; the walk skips it when it gets there.
func (e *editor) move(pos int) {
	n := 4<<10 + e.r.IntN(124<<10)
	if len(e.old)-pos < 4*n {
		return
	}
	for range 8 {
		start := pos + n + e.r.IntN(len(e.old)-pos-2*n)
		s := span{start, start + n}
		if e.overlapsMoved(s) {
			continue
		}
		e.out = append(e.out, e.old[s.start:s.end]...)
		e.moved = append(e.moved, s)
		e.edits.Moves++
		e.edits.MoveBytes += int64(n)
		return
	}
}

func (e *editor) overlapsMoved(s span) bool {
	for _, m := range e.moved {
		if s.start < m.end && m.start < s.end {
			return true
		}
	}
	return false
}

// keep appends old[a:b] to the output, leaving out the parts already moved.
func (e *editor) keep(a, b int) {
	for a < b {
		skipped := false
		for _, m := range e.moved {
			if m.start <= a && a < m.end {
				a = m.end
				skipped = true
			}
		}
		if skipped {
			continue
		}
		end := b
		for _, m := range e.moved {
			if m.start > a && m.start < end {
				end = m.start
			}
		}
		e.out = append(e.out, e.old[a:end]...)
		a = end
	}
}
