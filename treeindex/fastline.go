package treeindex

import (
	"encoding/json"
	"math"
	"unicode/utf8"
)

// decodeLine decodes an entry line into l (which must be zero) exactly as
// json.Unmarshal(line, l) does. The lines a Writer writes — one object,
// no spaces, the known keys each once, strings without escapes, integers
// — are decoded by hand (parseLine), about ten times as fast as
// encoding/json; anything else (escapes, other keys or spellings of keys,
// null, floats, whitespace, the trailer, malformed JSON) goes to
// encoding/json, which then decides. FuzzDecodeLine checks that both
// agree.
func decodeLine(line []byte, l *entryLine) error {
	if parseLine(line, l) {
		return nil
	}
	*l = entryLine{}
	return json.Unmarshal(line, l)
}

// Keys of an entry line parseLine knows, as bits of a set.
const (
	kPath = 1 << iota
	kType
	kSize
	kMode
	kMTime
	kSHA256
	kControl
	kData
	kTarget
	kIno
	kPack
	kCPack
	kSums
	kFrames
)

// Keys of a pack reference, as bits of a set.
const (
	pName = 1 << iota
	pOff
	pLen
	pEnc
)

// lineParser reads one line by hand; any byte it does not expect makes it
// give up (ok false) and leaves the line to encoding/json.
type lineParser struct {
	b []byte
	i int
}

// parseLine decodes line into l when the line is of the simple form a
// Writer writes, and reports whether it did.
func parseLine(line []byte, l *entryLine) bool {
	p := lineParser{b: line}
	return p.object(func(key []byte) (bit int, ok bool) {
		switch string(key) {
		case "path":
			bit = kPath
			l.Path, ok = p.string()
		case "type":
			bit = kType
			var t []byte
			if t, ok = p.str(); ok {
				// The three types without an allocation each.
				switch string(t) {
				case "file":
					l.Type = "file"
				case "dir":
					l.Type = "dir"
				case "symlink":
					l.Type = "symlink"
				default:
					l.Type = string(t)
				}
			}
		case "size":
			bit = kSize
			l.Size, ok = p.int()
		case "mode":
			bit = kMode
			var u uint64
			u, ok = p.uint()
			ok = ok && u <= math.MaxUint32
			l.Mode = uint32(u)
		case "mtime":
			bit = kMTime
			l.MTime, ok = p.int()
		case "sha256":
			bit = kSHA256
			l.SHA256, ok = p.string()
		case "control":
			bit = kControl
			l.Control, ok = p.string()
		case "data":
			bit = kData
			var s string
			s, ok = p.string()
			l.Data = &s
		case "target":
			bit = kTarget
			l.Target, ok = p.string()
		case "ino":
			bit = kIno
			l.Inode, ok = p.uint()
		case "pack":
			bit = kPack
			l.Pack = new(packLine)
			ok = p.pack(l.Pack)
		case "cpack":
			bit = kCPack
			l.CPack = new(packLine)
			ok = p.pack(l.CPack)
		case "sums":
			bit = kSums
			l.Sums = new(packLine)
			ok = p.pack(l.Sums)
		case "frames":
			bit = kFrames
			l.Frames = new(framesLine)
			ok = p.frames(l.Frames)
		default:
			return 0, false // "end", another key or spelling: encoding/json
		}
		return bit, ok
	}) && p.i == len(p.b)
}

// pack reads a pack reference object.
func (p *lineParser) pack(pl *packLine) bool {
	return p.object(func(key []byte) (bit int, ok bool) {
		switch string(key) {
		case "name":
			bit = pName
			pl.Name, ok = p.string()
		case "off":
			bit = pOff
			var off int64
			off, ok = p.int()
			pl.Offset = &off
		case "len":
			bit = pLen
			pl.Length, ok = p.int()
		case "enc":
			bit = pEnc
			pl.Encoding, ok = p.string()
		default:
			return 0, false
		}
		return bit, ok
	})
}

// frames reads a frames object. Its keys take the bits of the pack
// reference's keys ("fsz" that of "off", "lens" that of "len"): a set per
// object, each key once.
func (p *lineParser) frames(fl *framesLine) bool {
	return p.object(func(key []byte) (bit int, ok bool) {
		switch string(key) {
		case "name":
			bit = pName
			fl.Name, ok = p.string()
		case "enc":
			bit = pEnc
			fl.Encoding, ok = p.string()
		case "fsz":
			bit = pOff
			fl.FrameSize, ok = p.int()
		case "lens":
			bit = pLen
			fl.Lengths, ok = p.string()
		default:
			return 0, false
		}
		return bit, ok
	})
}

// object reads a JSON object of simple members: field reads the value of
// each key and returns the key's bit (each key may appear once) and
// whether the value was read; a key it does not know ends it (false).
func (p *lineParser) object(field func(key []byte) (bit int, ok bool)) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	seen := 0
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		bit, ok := field(key)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// byte consumes c if it is next.
func (p *lineParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters, in valid
// UTF-8 (what encoding/json would decode to the same bytes), and returns
// its bytes (in the line).
func (p *lineParser) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// string is str as a string.
func (p *lineParser) string() (string, bool) {
	s, ok := p.str()
	return string(s), ok
}

// digits reads an integer's digits as encoding/json's grammar allows them
// (no leading zero but for 0 itself), followed by ',' or '}' (no fraction
// or exponent), and returns their value if it fits in a uint64.
func (p *lineParser) digits() (uint64, bool) {
	start := p.i
	var v uint64
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		if c < '0' || c > '9' {
			break
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	n := p.i - start
	if n == 0 || n > 1 && p.b[start] == '0' {
		return 0, false
	}
	if p.i < len(p.b) && p.b[p.i] != ',' && p.b[p.i] != '}' {
		return 0, false
	}
	return v, true
}

// uint reads a non-negative integer.
func (p *lineParser) uint() (uint64, bool) { return p.digits() }

// int reads an integer that fits in an int64.
func (p *lineParser) int() (int64, bool) {
	neg := p.byte('-')
	v, ok := p.digits()
	if !ok {
		return 0, false
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}
