package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/bench"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// Exit codes, as zsync(1) uses them.
const (
	exitOK         = 0
	exitBadControl = 1 // the control file is malformed or unusable
	exitIO         = 2 // I/O error or checksum mismatch
	exitUsage      = 3 // bad usage or a failed download

	// exitBusy is EX_TEMPFAIL of sysexits.h: another sync is writing the
	// same output; try again once it has ended.
	exitBusy = 75
	// exitInterrupted is the shells' code for SIGINT (128+2), used for
	// SIGTERM too: the command was stopped and can be run again.
	exitInterrupted = 130
)

// env is what a command may use besides its arguments.
type env struct {
	stdout, stderr io.Writer
}

// command is one sub-command of zsyncpipe. Its synopsis is made from its
// flag set (see synopsis), so that it cannot drift from the flags.
type command struct {
	name     string
	operands string // the operands after the flags, e.g. "FILE"
	summary  string // one line for the command list
	run      func(ctx context.Context, e *env, args []string) error
}

// commands lists the sub-commands in the order "help" shows them.
var commands []*command

func init() {
	// Assigned here rather than in the declaration because cmdHelp refers
	// to commands.
	commands = []*command{
		{"make", "FILE", "make the control file (.zsync) of FILE", cmdMake},
		{"sync", "CONTROL", "rebuild the file described by CONTROL from local data and downloads", cmdSync},
		{"demo", "", "make and sync generated data end to end, and verify the result", cmdDemo},
		{"bench", "", "measure make and sync over a sweep of block sizes, beside zsync", cmdBench},
		{"index", "DIR", "publish the tree DIR: control files and a tree index, kept current with --watch", cmdIndex},
		{"serve", "DIR", "serve the tree DIR over HTTP with Range support while keeping its index current", cmdServe},
		{"subscribe", "BROKER-URL DIR", "keep DIR up to date from Sarracenia v03 announcements, delta-syncing each file", cmdSubscribe},
		{"announce", "BROKER-URL DIR FILE...", "post Sarracenia v03 announcements of files of DIR (control files made first)", cmdAnnounce},
		{"mirror", "URL DIR", "make DIR match the tree published at URL, downloading only what no local file holds", cmdMirror},
		{"version", "", "print the version", cmdVersion},
		{"help", "[command]", "explain zsyncpipe or one of its commands", cmdHelp},
	}
}

// lookup returns the command called name, or nil.
func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run runs zsyncpipe with the given arguments (without the program name)
// and returns the process exit code. Errors are printed to stderr as
// "zsyncpipe: <message>".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		writeUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		writeUsage(stdout)
		return exitOK
	case "-V", "--version":
		args = []string{"version"}
	}
	if args[0] == bench.ChildCommand {
		// Not a command for people: a measured step of "zsyncpipe bench".
		if err := cmdBenchChild(ctx, e, args[1:]); err != nil {
			fmt.Fprintf(stderr, "zsyncpipe: %v\n", err)
			return exitCode(err)
		}
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "zsyncpipe: unknown command %q\nRun 'zsyncpipe help' for usage.\n", args[0])
		return exitUsage
	}
	err := c.run(ctx, e, args[1:])
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	}
	fmt.Fprintf(stderr, "zsyncpipe: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.cmd == "help" {
			fmt.Fprintln(stderr, "Run 'zsyncpipe help' for the list of commands.")
		} else {
			fmt.Fprintf(stderr, "Run 'zsyncpipe %s -h' for usage.\n", ue.cmd)
		}
	}
	return exitCode(err)
}

// exitCode maps an error to the exit code zsync would use for it.
func exitCode(err error) int {
	var fe *control.FormatError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, zsyncpipe.ErrBusy):
		return exitBusy
	case errors.Is(err, zsyncpipe.ErrInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &fe), errors.Is(err, errBadControl),
		errors.Is(err, treeindex.ErrFormat): // a bad or unsafe tree index (mirror)
		return exitBadControl
	case errors.Is(err, zsyncpipe.ErrUsage), errors.Is(err, zsyncpipe.ErrNotRegular), errors.Is(err, zsyncpipe.ErrFetch):
		return exitUsage
	}
	// zsyncpipe.ErrVerify and everything else: I/O error or mismatch.
	return exitIO
}

// errBadControl is wrapped by errors about control files that parse but
// cannot be used (exit code 1).
var errBadControl = errors.New("bad control file")

// usageError reports wrong arguments to a command. It matches
// zsyncpipe.ErrUsage with errors.Is, so it maps to exit code 3.
type usageError struct {
	cmd string
	msg string
}

func (e *usageError) Error() string        { return e.cmd + ": " + e.msg }
func (e *usageError) Is(target error) bool { return target == zsyncpipe.ErrUsage }

// usagef returns a *usageError for command cmd.
func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// writeUsage prints the general help.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, `zsyncpipe makes zsync control files and rebuilds files from them, reusing
local data and downloading only the blocks that are missing.

Usage:
	zsyncpipe <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "\t%-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Synopsis:
`)
	for _, c := range commands {
		fmt.Fprintln(w, "\t"+synopsis(c))
	}
	fmt.Fprint(w, `
make writes FILE.zsync in the current directory (zsyncmake's default). Its
flags follow zsyncmake(1); --legacy writes the zsync 0.6.2 format (MD4 block
hashes, SHA-1) that Debian's zsync client needs, the default is the spec 0.8
format (MD5 block hashes, SHA-256), which is faster to make.

sync reads a local control file, scans the seeds given with -i, the existing
output file and its .part file, fetches the missing blocks from the control
file's URLs, checks the whole-file hash and only then replaces the output.
Its flags follow zsync(1).

Exit codes (as zsync):
	0  success
	1  bad control file
	2  I/O error or checksum mismatch
	3  usage error or failed download
	75  another sync is writing the same output (try again later)
	130  interrupted (SIGINT or SIGTERM); run the same command to resume

Run 'zsyncpipe help <command>' or 'zsyncpipe <command> -h' for the flags of a
command.
`)
}

// cmdHelp prints the general help or that of one command.
func cmdHelp(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		writeUsage(e.stdout)
		return nil
	}
	if len(args) > 1 {
		return usagef("help", "too many arguments")
	}
	c := lookup(args[0])
	if c == nil {
		return usagef("help", "unknown command %q", args[0])
	}
	// Every command answers -h with its flags.
	return c.run(ctx, e, []string{"-h"})
}

// flagSet is a flag.FlagSet with the help text of its command.
type flagSet struct {
	*flag.FlagSet
	// help prints the usage of the command to stdout, for -h.
	help func()
}

// newFlagSet returns the flag set of command c; intro explains the command
// in -h output, which goes to e.stdout. Parse errors are not printed: they
// are returned.
func newFlagSet(e *env, c string, intro string) *flagSet {
	fs := flag.NewFlagSet(c, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on every error
	help := func() {
		operands := ""
		if cmd := lookup(c); cmd != nil {
			operands = cmd.operands
		}
		fmt.Fprintln(e.stdout, "Usage: "+flagSynopsis(c, fs, operands))
		if intro = strings.TrimSpace(intro); intro != "" {
			fmt.Fprintf(e.stdout, "\n%s\n", intro)
		}
		if hasFlags(fs) {
			fmt.Fprint(e.stdout, "\nFlags:\n")
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
	return &flagSet{FlagSet: fs, help: help}
}

// synopsis returns the one-line synopsis of command c, made from its flag
// set: "zsyncpipe make [-b blocksize] … FILE".
func synopsis(c *command) string {
	if c.name == "help" {
		return "zsyncpipe help [command]"
	}
	var out strings.Builder
	c.run(context.Background(), &env{stdout: &out, stderr: io.Discard}, []string{"-h"})
	line, _, _ := strings.Cut(out.String(), "\n")
	return strings.TrimPrefix(line, "Usage: ")
}

// flagSynopsis returns the synopsis of command c with flag set fs: every
// flag in brackets with the name of its value, "..." after flags that may
// be repeated, then the operands.
func flagSynopsis(c string, fs *flag.FlagSet, operands string) string {
	parts := []string{"zsyncpipe", c}
	fs.VisitAll(func(f *flag.Flag) {
		name := "-" + f.Name
		if len(f.Name) > 1 {
			name = "--" + f.Name
		}
		if v, _ := flag.UnquoteUsage(f); v != "" {
			name += " " + v
		}
		part := "[" + name + "]"
		if _, ok := f.Value.(*listFlag); ok {
			part += "..."
		}
		parts = append(parts, part)
	})
	if operands != "" {
		parts = append(parts, operands)
	}
	return strings.Join(parts, " ")
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args with fs and returns the positional arguments.
// Flags may follow positional arguments, as with zsync's getopt; "--" ends
// the flags. For -h it prints the usage and returns flag.ErrHelp; other
// errors are returned as a *usageError.
func parseFlags(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.help()
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, usagef(fs.Name(), "%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
