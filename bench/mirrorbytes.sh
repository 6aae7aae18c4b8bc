#!/usr/bin/env bash
# Where the bytes of one mirror run go (docs/trees-measurements.md,
# "Fourth round: where the bytes go"): the tree index, control files, pack records, blocks, files
# fetched whole, response headers and multipart framing, from nginx's log
# of every response ($bytes_sent, $body_bytes_sent and the Range asked for).
# Usage: ZSP=zsyncpipe INDEX_FLAGS="" bench/mirrorbytes.sh OLD NEW [WORK]
#   NEW is copied, indexed with the binary ZSP (and INDEX_FLAGS), served by
#   nginx on loopback; a copy of OLD is mirrored from it with --delete.
set -euo pipefail
OLD=$1 NEW=$2 w=${3:-/tmp/zsyncpipe-bench-mirrorbytes}
ZSP=${ZSP:-zsyncpipe}
rm -rf "$w" && mkdir -p "$w/pub" "$w/m"
cp -a "$NEW/." "$w/pub"
# shellcheck disable=SC2086
"$ZSP" index -q --no-fsync ${INDEX_FLAGS:-} "$w/pub"
cp -a "$OLD/." "$w/m" && chmod -R u+w "$w/m"
. "$(dirname "$0")/nginx.sh"
serve_new "$w" "$w/pub" '$status $bytes_sent $body_bytes_sent $request_uri $http_range'
trap 'kill "$(cat "$w/nginx.pid")"' EXIT
: >"$w/logs/access.log" # serve_new's probe
echo "load: $(uptime)"
"$ZSP" mirror -v --delete "$url/new/" "$w/m" | grep '^bytes'
awk '
function add(c) { req[c]++; ranges[c] += n; hdr[c] += sent - body; frame[c] += body - pay; payload[c] += pay; total[c] += sent
	if (!(c in order)) { order[c] = ++classes; name[classes] = c } }
{
	st = $1; sent = $2; body = $3; uri = $4; rng = $5; sub(/^\/new/, "", uri)
	pay = body; n = 0
	if (st == 206 && rng ~ /^bytes=/) {
		n = split(substr(rng, 7), part, ","); pay = 0
		for (i = 1; i <= n; i++) { split(part[i], ab, "-"); pay += ab[2] - ab[1] + 1 }
		if (pay > body) pay = body
	}
	if (seen[uri " " rng]++) { again++; againBytes += sent }
	if (uri ~ /^\/\.zsyncpipe\/index/) add("tree index")
	else if (uri ~ /\.zsync$/) add("control files")
	else if (uri ~ /^\/\.zsyncpipe\/packs\//) add("pack records")
	else if (st == 206) add("blocks")
	else if (st == 200) add("whole files")
	else add("other (" st ")")
}
END {
	printf "%-14s %6s %7s %10s %10s %12s %12s\n", "", "reqs", "ranges", "headers", "framing", "payload", "total"
	for (k = 1; k <= classes; k++) { c = name[k]
		printf "%-14s %6d %7d %10d %10d %12d %12d\n", c, req[c], ranges[c], hdr[c], frame[c], payload[c], total[c]
		R += req[c]; N += ranges[c]; H += hdr[c]; F += frame[c]; P += payload[c]; T += total[c] }
	printf "%-14s %6d %7d %10d %10d %12d %12d\n", "all", R, N, H, F, P, T
	printf "asked again (same path and ranges): %d requests, %d bytes\n", again, againBytes
}' "$w/logs/access.log"
