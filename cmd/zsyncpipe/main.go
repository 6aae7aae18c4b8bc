// Command zsyncpipe makes zsync control files and rebuilds files from them.
//
// Usage:
//
//	zsyncpipe make [-b blocksize] [-f name] [--legacy] [-o path] [-q] [-u URL]... [-v] FILE
//	zsyncpipe sync [-A host=user:pass]... [--ca-file file] [-i seed]... [--identity key]... [-k path]
//	               [--known-hosts file]... [--max-ranges n] [--max-wait d] [--no-fsync] [-o path]
//	               [--parallel n] [-q] [--retries n] [-s] [--sftp-requests n] [--ssh-connections n]
//	               [--ssh-password] [-u URL] [--url URL]... [-v] CONTROL
//	zsyncpipe demo [--announce] [-b blocksize] [--dir dir] [--keep] [--legacy] [--seed seed]
//	               [--size size]
//	zsyncpipe bench [--binary binary] [--block-sizes list] [--corpus kind] [--json] [--legacy]
//	                [--no-fsync] [--no-zsync] [--plot file] [-q] [--runs n] [--seed seed]
//	                [--size size] [--zsync]
//	zsyncpipe index [--announce URL] [--append-only] [-b blocksize] [--base-url URL] [--beside]
//	                [--exchange exchange] [--inline size] [-j n] [--legacy] [--no-frames]
//	                [--no-fsync] [--no-packs] [--pack-grace duration] [--pack-large] [--pack-max size]
//	                [--partition-all] [--partition-size size] [-q] [--rehash duration]
//	                [--rescan duration] [--settle duration] [--small size] [--topic-prefix prefix]
//	                [-v] [--watch] DIR
//	zsyncpipe serve [--announce URL] [--append-only] [-b blocksize] [--base-url URL] [--beside]
//	                [--exchange exchange] [--inline size] [-j n] [--legacy] [--listen address]
//	                [--no-frames] [--no-fsync] [--no-index] [--no-packs] [--pack-grace duration] [--pack-large] [--pack-max size]
//	                [--partition-all] [--partition-size size] [-q]
//	                [--rehash duration] [--rescan duration] [--settle duration] [--small size]
//	                [--tls-cert file] [--tls-key file] [--topic-prefix prefix] DIR
//	zsyncpipe subscribe [--client-id id] [--dead-letter exchange] [--exchange exchange]
//	                    [--max-messages n] [-q] [--queue name] [--seeds dir]... [--topic pattern]...
//	                    [--topic-prefix prefix] [-v] [--workers n] BROKER-URL DIR
//	zsyncpipe announce [--base-url URL] [--exchange exchange] [--inline-max size]
//	                   [--partition-all] [--partition-size size] [-q] [--remove]
//	                   [--topic-prefix prefix] [-v] BROKER-URL DIR FILE...
//	zsyncpipe mirror [-A host=user:pass]... [--allow-outside-links] [-c] [--checksum] [--delete]
//	                 [--dry-run] [-n] [--no-frames] [--no-fsync] [--no-skim] [--parallel n] [-q] [--recheck]
//	                 [--retries n] [--scan-unchanged] [--skip-unchanged] [-v] URL DIR
//	zsyncpipe version
//	zsyncpipe help [command]
//
// The flags of make and sync follow zsyncmake(1) and zsync(1), and so do the
// exit codes: 1 for a bad control file, 2 for an I/O error or a checksum
// mismatch, 3 for a usage error or a failed download; 75 when another sync
// is writing the same output; 130 when interrupted (SIGINT or SIGTERM). Run
// "zsyncpipe help" for details.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first SIGINT or SIGTERM cancels ctx, which every blocking
		// step honours; a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	// No sampling of allocations for heap profiles, which nothing here
	// writes (bench's child turns it back on for -memprofile): in a mirror
	// run its hash table took a hundred copy-on-write faults of its own
	// (see internal/prefault).
	runtime.MemProfileRate = 0
	stopProfile := startProfile(os.Getenv("ZSYNCPIPE_CPUPROFILE"), os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}
