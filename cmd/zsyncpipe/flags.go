package main

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// blocksizeFlag is a -b value: a power of two given in any form that
// humanize.ParseBytes accepts ("2048", "4KiB", "4k"). Zero means the
// default.
type blocksizeFlag int

func (b *blocksizeFlag) String() string {
	if b == nil || *b == 0 {
		return ""
	}
	return fmt.Sprint(int(*b))
}

func (b *blocksizeFlag) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("not a size: %q", s)
	}
	if err := control.CheckMakeBlocksize(int64(min(n, math.MaxInt64))); err != nil {
		return err
	}
	*b = blocksizeFlag(n)
	return nil
}

// sizeFlag is a byte count given in any form that humanize.ParseBytes
// accepts.
type sizeFlag int64

func (s *sizeFlag) String() string {
	if s == nil || *s == 0 {
		return "0"
	}
	return humanize.IBytes(uint64(*s))
}

func (s *sizeFlag) Set(v string) error {
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return fmt.Errorf("not a size: %q", v)
	}
	if n > 1<<62 {
		return errors.New("size too large")
	}
	*s = sizeFlag(n)
	return nil
}

// listFlag collects the values of a flag that may be repeated.
type listFlag []string

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ", ")
}

func (l *listFlag) Set(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	*l = append(*l, s)
	return nil
}
