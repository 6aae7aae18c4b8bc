#!/usr/bin/env bash
# Indexing a real tree, one run side by side (docs/trees.md, "Measurements"):
# zsyncpipe index vs SHA-256 of every file on all cores vs zsyncmake per file.
# Usage: bench/trees.sh [zsyncpipe binary]   (needs zsyncmake, GNU time)
set -euo pipefail
Z=${1:-zsyncpipe}
T=${TREE:-/tmp/zsyncpipe-bench-tree}
P=$(nproc)
if [ ! -d "$T" ]; then
	src=$(go mod download -json golang.org/toolchain@v0.0.1-go1.24.4.linux-amd64 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	cp -r "$src" "$T" && chmod -R u+w "$T"
fi
uptime
find "$T" -type f -print0 | xargs -0 cat >/dev/null # warm the page cache
m() { /usr/bin/time -f "%e s wall, %U user + %S sys, %M KiB RSS" "$@" 2>&1 >/dev/null | tail -1; }
rm -rf "$T/.zsyncpipe"
echo "index: $(m "$Z" index -q --no-fsync "$T")"
echo "re-index, nothing changed: $(m "$Z" index -q --no-fsync "$T")"
echo x >>"$T/src/fmt/print.go"
echo "re-index, one file changed: $(m "$Z" index -q --no-fsync "$T")"
echo "sha256sum, xargs -P$P: $(m sh -c "find '$T' -path '$T/.zsyncpipe' -prune -o -type f -print0 | xargs -0 -P$P -n 500 sha256sum")"
echo "zsyncmake per file, xargs -P$P: $(m sh -c "cd /tmp && find '$T' -path '$T/.zsyncpipe' -prune -o -type f -print0 | xargs -0 -P$P -I{} zsyncmake -o /dev/null {}")"
rm -rf "$T/.zsyncpipe"
echo "index --legacy: $(m "$Z" index -q --legacy --no-fsync "$T")"
uptime
