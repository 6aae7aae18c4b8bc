#!/usr/bin/env bash
# Indexing a real tree, one run side by side (docs/trees-measurements.md):
# zsyncpipe index vs SHA-256 of every file on all cores vs zsyncmake per file.
# Usage: bench/trees.sh [zsyncpipe binary]...   (needs zsyncmake, GNU time)
# Several binaries (a build before and after a change) are measured one
# after the other in the same run; TREE names the tree (a copy is made of
# the Go 1.24.4 toolchain when it does not exist).
set -euo pipefail
[ $# -gt 0 ] || set -- zsyncpipe
T=${TREE:-/tmp/zsyncpipe-bench-tree}
P=$(nproc)
if [ ! -d "$T" ]; then
	src=$(bash "$(dirname "$0")/gotree.sh" "$T.get" 1.24.4)
	mv "$src" "$T" && rmdir "$T.get"
fi
uptime
find "$T" -type f -print0 | xargs -0 cat >/dev/null # warm the page cache
m() { /usr/bin/time -f "%e s wall, %U user + %S sys, %M KiB RSS" "$@" 2>&1 >/dev/null | tail -1; }
# A fresh start: no index. The previous one is moved away and removed at
# the end, not removed now: for half a minute after an rm -rf, ext4 checks
# the recently deleted inodes in every create (recently_deleted), which
# made a third of the indexer's CPU time here and is no part of indexing.
n=0
fresh() {
	if [ -d "$T/.zsyncpipe" ]; then
		mkdir -p "$T.trash" && mv "$T/.zsyncpipe" "$T.trash/$((n++))"
	fi
}
trap 'rm -rf "$T.trash"' EXIT
for Z in "$@"; do
	fresh
	echo "$Z index: $(m "$Z" index -q --no-fsync "$T")"
	echo "$Z re-index, nothing changed: $(m "$Z" index -q --no-fsync "$T")"
	echo x >>"$T/src/fmt/print.go"
	echo "$Z re-index, one file changed: $(m "$Z" index -q --no-fsync "$T")"
	fresh
	echo "$Z index with fsync: $(m "$Z" index -q "$T")"
done
echo "sha256sum, xargs -P$P: $(m sh -c "find '$T' -path '$T/.zsyncpipe' -prune -o -type f -print0 | xargs -0 -P$P -n 500 sha256sum")"
echo "zsyncmake per file, xargs -P$P: $(m sh -c "cd /tmp && find '$T' -path '$T/.zsyncpipe' -prune -o -type f -print0 | xargs -0 -P$P -I{} zsyncmake -o /dev/null {}")"
for Z in "$@"; do
	fresh
	echo "$Z index --legacy: $(m "$Z" index -q --legacy --no-fsync "$T")"
done
fresh
uptime
