#!/usr/bin/env bash
# bytes.sh — where the downloaded bytes go: zsync 0.6.2 and zsyncpipe
# rebuild NEW from OLD through nginx on loopback, and every request nginx
# answers is split into control file, payload (the ranges asked for,
# clipped to the file), part framing (multipart part headers and closing
# boundaries) and response headers, from its $bytes_sent,
# $body_bytes_sent and $http_range.
#
#   bench/bytes.sh OLD NEW [ZSYNCPIPE…]
#
# BS sets the block size (default 4096). zsyncpipe binaries default to the
# zsyncpipe on PATH; each makes its own control file, in its default format.
# Outputs are compared with NEW byte for byte.
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2"); shift 2
bins=("$@"); [ ${#bins[@]} -gt 0 ] || bins=("$(command -v zsyncpipe)")
bs=${BS:-4096}
w=$(mktemp -d /tmp/bytes.XXXXXX)
trap 'kill "$(cat "$w/nginx.pid" 2>/dev/null)" 2>/dev/null || true; sleep 0.2; rm -rf "$w"' EXIT
. "$(dirname "$0")/nginx.sh"
serve_new "$w" "$new" '$bytes_sent $body_bytes_sent $request_uri $http_range'
mkdir -p "$w/out"
size=$(stat -c %s "$new")

# account NAME: one line of figures from the access log.
account() {
	awk -v name="$1" -v size="$size" '
	{ sent += $1; hdr += $1 - $2; n++
	  if ($4 !~ /^bytes=/) { ctl += $2; next }
	  k = split(substr($4, 7), rs, ","); pay = 0
	  for (i = 1; i <= k; i++) { split(rs[i], ab, "-"); e = ab[2] + 1; if (e > size) e = size; pay += e - ab[1] }
	  payload += pay; framing += $2 - pay; parts += k }
	END { printf "%-12s %12d %9d %12d %9d %6d %9d %5d\n", name, sent, ctl, payload, framing, parts, hdr, n }' "$w/logs/access.log"
}
printf '%-12s %12s %9s %12s %9s %6s %9s %5s\n' tool sent control payload framing parts headers reqs
zsyncmake -b "$bs" -u "$url/new" -o "$w/www/zsync.zsync" "$new"
: >"$w/logs/access.log"
(cd "$w/out" && zsync -q -i "$old" -o out "$url/zsync.zsync")
cmp "$w/out/out" "$new"
account zsync
for i in "${!bins[@]}"; do
	"${bins[$i]}" make -b "$bs" -u "$url/new" -o "$w/www/zsp$i.zsync" "$new" >/dev/null 2>"$w/err" || { cat "$w/err" >&2; exit 1; }
	rm -f "$w/out/out"; : >"$w/logs/access.log"
	"${bins[$i]}" sync -q -i "$old" -o "$w/out/out" "$url/zsp$i.zsync"
	cmp "$w/out/out" "$new"
	account "$(basename "${bins[$i]}")"
done
echo "# $(basename "$old") -> $(basename "$new"), blocksize $bs; $(uptime | sed 's/.*load/load/')"
