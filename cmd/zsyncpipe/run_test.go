package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
)

func TestUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout []string // substrings of stdout
		stderr []string // substrings of stderr
	}{
		{nil, 3, nil, []string{"Usage:", "make", "sync", "demo", "Exit codes"}},
		{[]string{"-h"}, 0, []string{"Usage:", "zsyncpipe make", "zsyncpipe sync", "--legacy", "Exit codes"}, nil},
		{[]string{"--help"}, 0, []string{"Commands:"}, nil},
		{[]string{"help"}, 0, []string{"Commands:"}, nil},
		{[]string{"help", "make"}, 0, []string{"Usage: zsyncpipe make", "-b blocksize", "-legacy", "-u URL", "-f name", "-o path"}, nil},
		{[]string{"help", "sync"}, 0, []string{"Usage: zsyncpipe sync", "-i seed", "-k path", "-u URL", "-o path", "-q"}, nil},
		{[]string{"help", "nosuch"}, 3, nil, []string{"zsyncpipe: help: unknown command"}},
		{[]string{"help", "a", "b"}, 3, nil, []string{"too many arguments"}},
		{[]string{"nosuch"}, 3, nil, []string{`zsyncpipe: unknown command "nosuch"`}},
		{[]string{"make", "-h"}, 0, []string{"Usage: zsyncpipe make", "zsync 0.6.2"}, nil},
		{[]string{"make", "--help"}, 0, []string{"Usage: zsyncpipe make"}, nil},
		{[]string{"sync", "-h"}, 0, []string{"Usage: zsyncpipe sync", ".part"}, nil},
		{[]string{"demo", "-h"}, 0, []string{"Usage: zsyncpipe demo", "-size", "-seed"}, nil},
		{[]string{"version", "-h"}, 0, []string{"Usage: zsyncpipe version"}, nil},
		{[]string{"make"}, 3, nil, []string{"zsyncpipe: make: want exactly one FILE", "zsyncpipe make -h"}},
		{[]string{"make", "a", "b"}, 3, nil, []string{"want exactly one FILE, got 2"}},
		{[]string{"make", "-b", "3000", "f"}, 3, nil, []string{"not a power of two"}},
		{[]string{"make", "-b", "4k", "f"}, 3, nil, []string{"not a power of two"}}, // 4000
		{[]string{"make", "-b", "lots", "f"}, 3, nil, []string{"not a size"}},
		{[]string{"make", "-b", "0", "f"}, 3, nil, []string{"not a power of two"}},
		{[]string{"make", "-b", "2GiB", "f"}, 3, nil, []string{"not a power of two"}},
		{[]string{"make", "-x", "f"}, 3, nil, []string{"zsyncpipe: make: flag provided but not defined: -x"}},
		{[]string{"make", "f", "-x"}, 3, nil, []string{"flag provided but not defined: -x"}},
		{[]string{"make", "-u", "", "f"}, 3, nil, []string{"empty value"}},
		{[]string{"make", "-f", "a/b", "f"}, 3, nil, []string{"must not contain '/'"}},
		{[]string{"make", "-o"}, 3, nil, []string{"flag needs an argument: -o"}},
		{[]string{"sync"}, 3, nil, []string{"zsyncpipe: sync: want exactly one CONTROL"}},
		{[]string{"sync", "a.zsync", "b.zsync"}, 3, nil, []string{"got 2 arguments"}},
		{[]string{"sync", "-z", "a.zsync"}, 3, nil, []string{"flag provided but not defined: -z"}},
		{[]string{"sync", "-i", "", "a.zsync"}, 3, nil, []string{"empty value"}},
		{[]string{"sync", "--parallel", "0", "a.zsync"}, 3, nil, []string{"--parallel"}},
		{[]string{"sync", "-A", "nocolon", "a.zsync"}, 3, nil, []string{"-A nocolon"}},
		{[]string{"demo", "extra"}, 3, nil, []string{"no arguments expected"}},
		{[]string{"demo", "-size", "0"}, 3, nil, []string{"-size must be positive"}},
		{[]string{"demo", "-size", "huge"}, 3, nil, []string{"not a size"}},
		{[]string{"version", "extra"}, 3, nil, []string{"no arguments expected"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runZ(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			if tt.code == 0 && r.stderr != "" {
				t.Errorf("stderr not empty on success: %s", r.stderr)
			}
			if tt.code != 0 && r.stdout != "" {
				t.Errorf("stdout not empty on failure: %s", r.stdout)
			}
			if tt.code != 0 && tt.args != nil && !strings.HasPrefix(r.stderr, "zsyncpipe: ") {
				t.Errorf("error does not start with \"zsyncpipe: \": %s", r.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-V"}, {"--version"}} {
		r := mustRun(t, args...)
		if !strings.HasPrefix(r.stdout, "zsyncpipe ") || !strings.Contains(r.stdout, runtime.Version()) {
			t.Errorf("%v: got %q", args, r.stdout)
		}
	}
}

func TestExitCode(t *testing.T) {
	fe := &control.FormatError{Line: 3, Name: "Blocksize", Err: errors.New("bad")}
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{fe, 1},
		{fmt.Errorf("x.zsync: %w", fe), 1},
		{fmt.Errorf("sync: %w", fmt.Errorf("x: %w", errBadControl)), 1},
		{zsyncpipe.ErrVerify, 2},
		{fmt.Errorf("sync out: %w", zsyncpipe.ErrVerify), 2},
		{fmt.Errorf("read: %w", fs.ErrNotExist), 2},
		{errors.New("disk on fire"), 2},
		{fmt.Errorf("sync: %w", zsyncpipe.ErrFetch), 3},
		{fmt.Errorf("sync: %w", zsyncpipe.ErrUsage), 3},
		{usagef("make", "nope"), 3},
		{fmt.Errorf("wrapped: %w", usagef("make", "nope")), 3},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		quiet   bool
		out     string
		wantErr bool
	}{
		{[]string{"f"}, []string{"f"}, false, "", false},
		{[]string{"-q", "f"}, []string{"f"}, true, "", false},
		{[]string{"f", "-q"}, []string{"f"}, true, "", false},
		{[]string{"a", "-o", "x", "b", "-q"}, []string{"a", "b"}, true, "x", false},
		{[]string{"--", "-q"}, []string{"-q"}, false, "", false},
		{[]string{"a", "--", "-q", "-o"}, []string{"a", "-q", "-o"}, false, "", false},
		{[]string{"-", "-q"}, []string{"-"}, true, "", false},
		{[]string{"a", "-nope"}, nil, false, "", true},
	}
	for _, tt := range tests {
		e := &env{stdout: &strings.Builder{}, stderr: &strings.Builder{}}
		fs := newFlagSet(e, "make", "")
		q := fs.Bool("q", false, "")
		o := fs.String("o", "", "")
		pos, err := parseFlags(fs, tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v, wantErr %v", tt.args, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, zsyncpipe.ErrUsage) {
				t.Errorf("%q: err %v does not match ErrUsage", tt.args, err)
			}
			continue
		}
		if fmt.Sprint(pos) != fmt.Sprint(tt.pos) || *q != tt.quiet || *o != tt.out {
			t.Errorf("%q: got pos %q q=%v o=%q, want %q q=%v o=%q", tt.args, pos, *q, *o, tt.pos, tt.quiet, tt.out)
		}
	}
	// -h yields flag.ErrHelp and the usage on stdout.
	var out strings.Builder
	e := &env{stdout: &out, stderr: &out}
	fs := newFlagSet(e, "sync", "intro text")
	fs.Bool("q", false, "be quiet")
	if _, err := parseFlags(fs, []string{"x", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "intro text") || !strings.Contains(out.String(), "be quiet") {
		t.Errorf("-h usage: %q", out.String())
	}
}

func TestBlocksizeFlag(t *testing.T) {
	good := map[string]int{"16": 16, "2048": 2048, "4KiB": 4096, "4 KiB": 4096, "64kib": 65536, "1MiB": 1 << 20}
	for s, want := range good {
		var b blocksizeFlag
		if err := b.Set(s); err != nil || int(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", s, b, err, want)
		}
	}
	// Below control.MinMakeBlocksize too: make would refuse it later;
	// above control.MaxBlocksize (1 MiB) no control file may go.
	for _, s := range []string{"", "0", "1", "8", "3", "3000", "4k", "4KB", "-2048", "2MiB", "1GiB", "2GiB", "x"} {
		var b blocksizeFlag
		if err := b.Set(s); err == nil {
			t.Errorf("Set(%q) = %d, want error", s, b)
		}
	}
}

func TestRelativeURL(t *testing.T) {
	tests := []struct{ control, target, want string }{
		{"f.bin.zsync", "f.bin", "f.bin"},
		{"f.bin.zsync", "sub/f.bin", "sub/f.bin"}, // zsyncmake's default
		{"out/f.bin.zsync", "f.bin", "../f.bin"},
		{"out/f.bin.zsync", "out/f.bin", "f.bin"},
		{"a b.zsync", "a b#1%.bin", "a%20b%231%25.bin"},
		{"x.zsync", "c:d.bin", "./c:d.bin"},
	}
	for _, tt := range tests {
		if got := relativeURL(tt.control, tt.target); got != tt.want {
			t.Errorf("relativeURL(%q, %q) = %q, want %q", tt.control, tt.target, got, tt.want)
		}
	}
}

func TestCheckFilename(t *testing.T) {
	for _, name := range []string{"a.bin", "go1.26.8.tar", "..x", ".hidden", "a b"} {
		if err := checkFilename(name); err != nil {
			t.Errorf("checkFilename(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", "/etc/passwd", "../x", `a\b`, "a\x00b"} {
		err := checkFilename(name)
		if err == nil || exitCode(err) != exitBadControl {
			t.Errorf("checkFilename(%q) = %v (exit %d), want a bad-control error", name, err, exitCode(err))
		}
	}
}

func TestFormatSummary(t *testing.T) {
	s := &zsyncpipe.Summary{
		Length:     224798720,
		Reused:     214398720,
		Fetched:    10400000,
		Ranges:     12,
		Requests:   1,
		Overhead:   5200,
		Downloaded: 10405200,
		Duration:   310 * time.Millisecond,
	}
	got := formatSummary("go1.26.8.tar", s)
	want := "go1.26.8.tar: 214 MiB (204 MiB reused from local data, 9.9 MiB fetched in 12 ranges, 1 request, 9.9 MiB downloaded) in 0.31s, 725 MB/s of output"
	if got != want {
		t.Errorf("formatSummary:\n got %q\nwant %q", got, want)
	}
	// A source that does not count ranges, and a single range.
	s.Ranges, s.Requests, s.Overhead, s.Downloaded = 0, 0, 0, 0
	if got := formatSummary("f", s); !strings.Contains(got, "9.9 MiB fetched) in") {
		t.Errorf("without ranges: %q", got)
	}
	s.Ranges, s.Requests = 1, 1
	if got := formatSummary("f", s); !strings.Contains(got, "9.9 MiB fetched in 1 range) in") {
		t.Errorf("one range: %q", got)
	}
	s.UpToDate = true
	if got := formatSummary("f", s); !strings.Contains(got, "f: 214 MiB already up to date, nothing written") {
		t.Errorf("up to date: %q", got)
	}
}

// TestSynopsesDocumented checks that README.md and the command's doc
// comment show the synopses the command makes from its flags, so that the
// three cannot drift apart.
func TestSynopsesDocumented(t *testing.T) {
	normalize := func(s string) string {
		s = strings.ReplaceAll(s, "//", " ")
		return strings.Join(strings.Fields(s), " ")
	}
	for _, doc := range []string{"../../README.md", "main.go"} {
		text := normalize(string(readFile(t, doc)))
		for _, c := range commands {
			if syn := synopsis(c); !strings.Contains(text, normalize(syn)) {
				t.Errorf("%s lacks the synopsis %q", doc, syn)
			}
		}
	}
}
