#!/usr/bin/env bash
# Unpacks Go toolchain releases from the Go module proxy into trees for
# bench/mirror.sh and bench/rounds.sh: DIR/go1.24.5 and so on, each the
# module golang.org/toolchain@v0.0.1-goVERSION.linux-amd64 (about 11,000
# files, 240 MB) as `go mod download` unpacks it, made writable. A tree
# already there is left as it is. Prints the path of each tree.
# Usage: bench/gotree.sh DIR VERSION...
#   e.g. bench/gotree.sh /tmp/go-trees 1.22.12 1.24.5, then
#   ROUNDS=4 bench/rounds.sh /tmp/go-trees/go1.22.12 /tmp/go-trees/go1.24.5
# Needs go and the Go module proxy (about 75 MB downloaded per release).
set -euo pipefail
if [ $# -lt 2 ]; then
	echo "usage: bench/gotree.sh DIR VERSION... (e.g. bench/gotree.sh /tmp/go-trees 1.24.4 1.24.5)" >&2
	exit 2
fi
dir=$1
shift
mkdir -p "$dir"
for v in "$@"; do
	v=${v#go}
	t="$dir/go$v"
	if [ ! -d "$t" ]; then
		mod="golang.org/toolchain@v0.0.1-go$v.linux-amd64"
		src=$(go mod download -json "$mod" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p') || true
		if [ -z "$src" ]; then
			echo "bench/gotree.sh: go mod download $mod failed (no such release?)" >&2
			exit 1
		fi
		# Copied under another name first: an interrupted copy is not
		# taken for a tree by the next run.
		rm -rf "$t.part"
		cp -r "$src" "$t.part" && chmod -R u+w "$t.part" && mv "$t.part" "$t"
	fi
	echo "$t"
done
