// Package sftpsource reads byte ranges and whole small files over SFTP, for
// the fetch stage of a zsync client and for control files: the SFTP
// counterpart of package httpsource, on github.com/pkg/sftp over
// golang.org/x/crypto/ssh.
//
// # Reads in flight
//
// A Source serves one sftp://[user@]host[:port]/path URL and implements
// source.RangeSource. Each ReadRanges call cuts its ranges into read
// requests of Options.PacketSize bytes (32 KiB), sends them in file order
// and delivers the ranges to the callback in order as the answers come
// back. Up to Options.Requests (256) requests per file and connection are
// outstanding or waiting to be consumed at once, shared by the calls that
// run concurrently: a long link stays full, and memory stays bounded.
//
// # Connections
//
// A Pool holds the SSH connections of a run, one set per user, host and
// port, opened on first use: every file read from a server goes over the
// same connection, or over Options.Connections of them in turn.
//
// # Authentication and host keys
//
// As ssh(1) with no configuration: the agent at SSH_AUTH_SOCK, then the
// key files (Options.IdentityFiles, or ~/.ssh/id_rsa, id_ecdsa, id_ed25519),
// then a password only when one is given. Host keys are checked against
// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, or Options.KnownHosts;
// an unknown, changed or revoked key is refused with a *HostKeyError that
// names its SHA-256 fingerprint.
//
// # Consistency and retries
//
// Each call checks the file's size and modification time (fstat, sent with
// the first reads) against the first ones seen, and fails with ErrChanged
// when they differ, before delivering anything. Answers of the server (no
// such file, permission denied), refused host keys and failed logins are
// final. A dropped, refused or stalled (Options.IdleTimeout) connection is
// opened again after a backoff and the undelivered ranges read again, up to
// Options.Retries failures in a row.
package sftpsource
