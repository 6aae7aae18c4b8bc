// Command zsyncpipe makes zsync control files and rebuilds files from them.
//
// Usage:
//
//	zsyncpipe make [-b blocksize] [-o out.zsync] [-u url]... [-f filename] [--legacy] [-v] [-q] FILE
//	zsyncpipe sync [-i seed]... [-o out] [-k saved.zsync] [-u base-url] [-A host=user:pass]...
//	               [--url mirror]... [--parallel n] [--no-fsync] [-v] [-q] CONTROL
//	zsyncpipe demo [-size 32MiB] [-seed n] [-b blocksize] [--legacy] [-keep] [-dir dir]
//	zsyncpipe bench [--corpus kind|OLD,NEW] [--size n] [--block-sizes list] [--runs n] [--json] [--plot file]
//	zsyncpipe index [--watch] [--beside] [--legacy] [--small size] [-v] [-q] DIR
//	zsyncpipe serve [--listen addr] [--tls-cert file --tls-key file] [index flags] DIR
//	zsyncpipe version
//	zsyncpipe help [command]
//
// The flags of make and sync follow zsyncmake(1) and zsync(1), and so do the
// exit codes: 1 for a bad control file, 2 for an I/O error or a checksum
// mismatch, 3 for a usage error or a failed download. Run "zsyncpipe help"
// for details.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
