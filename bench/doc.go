// Package bench measures zsyncpipe against zsync 0.6.2 and against the floor
// of copying the target once while hashing it.
//
// A benchmark takes a corpus — an old file the client holds and the new file
// it wants — and, for each block size of a sweep, makes the control file and
// syncs the old file to the new one with both tools in the same run. Missing
// blocks are served to both clients by the same loopback HTTP server, which
// counts the bytes it sends, so "bytes downloaded" means the same for both.
//
// Both tools run as child processes, so that their peak resident memory can
// be read from the kernel's rusage. zsyncpipe's child is the running binary
// itself (or Options.Binary) started with the ChildCommand argument; a program
// that calls Run must dispatch that argument to RunChild, as the zsyncpipe
// command does.
//
// Corpora are generated deterministically from a seed by Generate, or any
// pair of files can be given with FileCorpus.
package bench
