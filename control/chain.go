package control

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// HashChain lets a client check a file's SHA-256 (Header.SHA256) in pieces,
// in parallel and in any order, instead of in one serial pass that must wait
// for the file's first missing block.
//
// SHA-256 hashes a file 64 bytes at a time, carrying a state of eight 32-bit
// words from one 64-byte piece to the next. States[i] is that state after
// the first (i+1)·Span bytes, the words big-endian. A client that starts
// span i+1 from States[i] and arrives at States[i+1] (or, for the last
// span, at the File-Hash) has checked that span; when every span checks,
// the SHA-256 of the whole file is the File-Hash — the same computation as
// the serial one, cut into independent pieces. Nothing in the chain needs
// trusting: a wrong state only makes the check fail.
//
// It is written as the header "Hash-Chain: SHA-256:SPAN:HEX,HEX,…" and
// listed in Safe, so clients that do not know it ignore it.
type HashChain struct {
	// Span is the length of each piece but the last: a multiple of 64 and
	// of the block size.
	Span int64
	// States holds the state after each span but the last: one fewer
	// than the number of spans, and at least one.
	States [][32]byte
}

// MaxChainStates is the most states a Hash-Chain header holds: the line
// stays under the 1 KiB that zsync 0.6.2 reads.
const MaxChainStates = 14

// ChainSpan returns the span for a hash chain of a file of the given length
// and block size, and whether such a file should have one: files of fewer
// than two spans of at least 1 MiB do not.
func ChainSpan(length int64, blocksize int) (int64, bool) {
	unit := int64(max(blocksize, 64))
	if unit <= 0 || length <= 0 {
		return 0, false
	}
	per := (length + MaxChainStates) / (MaxChainStates + 1) // ceil(length / (states+1))
	span := max((per+unit-1)/unit*unit, (1<<20+unit-1)/unit*unit)
	if (length+span-1)/span < 2 {
		return 0, false
	}
	return span, true
}

// Spans returns the number of pieces the chain cuts a file of the given
// length into.
func (c *HashChain) Spans(length int64) int64 {
	if c.Span <= 0 {
		return 0
	}
	return (length + c.Span - 1) / c.Span
}

const chainPrefix = "SHA-256:"

func (c *HashChain) value() string {
	var b strings.Builder
	b.WriteString(chainPrefix)
	b.WriteString(strconv.FormatInt(c.Span, 10))
	b.WriteByte(':')
	for i, s := range c.States {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(hex.EncodeToString(s[:]))
	}
	return b.String()
}

// isSHA256Chain reports whether a Hash-Chain value is a SHA-256 one, the
// only kind this package interprets.
func isSHA256Chain(value string) bool { return strings.HasPrefix(value, chainPrefix) }

func parseChain(value string) (*HashChain, error) {
	span, states, ok := strings.Cut(strings.TrimPrefix(value, chainPrefix), ":")
	if !ok {
		return nil, errors.New("want SHA-256:SPAN:STATE,STATE,…")
	}
	n, err := parseDecimal(span)
	if err != nil {
		return nil, fmt.Errorf("span: %w", err)
	}
	c := &HashChain{Span: n}
	for s := range strings.SplitSeq(states, ",") {
		b, err := parseHex(s, 32)
		if err != nil {
			return nil, fmt.Errorf("state %d: %w", len(c.States), err)
		}
		if len(c.States) == MaxChainStates {
			return nil, fmt.Errorf("more than %d states", MaxChainStates)
		}
		c.States = append(c.States, [32]byte(b))
	}
	return c, nil
}

// check checks the chain against the header it belongs to.
func (c *HashChain) check(h *Header) error {
	switch {
	case h.SHA256 == nil:
		return errors.New("a hash chain needs a SHA-256 File-Hash")
	case c.Span <= 0 || c.Span%64 != 0:
		return fmt.Errorf("span %d is not a positive multiple of 64", c.Span)
	case h.Blocksize > 0 && c.Span%int64(h.Blocksize) != 0:
		return fmt.Errorf("span %d is not a multiple of the block size %d", c.Span, h.Blocksize)
	case len(c.States) == 0 || len(c.States) > MaxChainStates:
		return fmt.Errorf("%d states; want 1 to %d", len(c.States), MaxChainStates)
	case int64(len(c.States)) != c.Spans(h.Length)-1:
		return fmt.Errorf("%d states for %d spans of %d bytes", len(c.States), c.Spans(h.Length), c.Span)
	}
	return nil
}
