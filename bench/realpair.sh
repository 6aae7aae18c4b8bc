#!/usr/bin/env bash
# realpair.sh — zsync 0.6.2 and zsyncpipe side by side on a real pair of
# files, every tool at its defaults (zsyncpipe flushes its result to disk),
# control files and missing blocks served by nginx on loopback.
#
#   bench/realpair.sh OLD NEW [BLOCKSIZE [RUNS]]
#
# ZSP="bin1 bin2 …" measures several zsyncpipe binaries in the same run
# (default: zsyncpipe on PATH); MAKE=0 skips the make rows, SYNC=0 the sync
# rows; ZSYNC=0 leaves zsync out; ZSP_MAKE_FLAGS adds flags to zsyncpipe
# make (ZSP_MAKE_FLAGS=--legacy: zsync 0.6.2's format, as zsyncmake's). Each step runs RUNS times (default 5), the
# tools interleaved so that load changes hit them alike; every row gives the
# minimum and the median of wall time, of CPU time (user+sys) and of peak
# RSS, from /usr/bin/time. Outputs are compared with NEW byte for byte;
# "down" is what nginx sent for the sync: control file, headers, bodies.
# With the sync rows comes the disk floor ("floor disk-METHOD"): NEW's
# bytes written to a new file beside the outputs and flushed, nothing
# else, by each way in FLOOR_METHODS (default "hints flushes plain", see
# `zsyncpipe bench-child disk` and bench.DiskMethods; run by FLOOR_BIN, by
# default the last of ZSP; FLOOR=0 leaves it out), timed in the same runs;
# then each tool's sync time over the fastest of them (min over the
# lowest min, median over the lowest median): for zsync, the most any
# tool that flushes its result can be faster than zsync on this machine.
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") bs=${3:-4096} runs=${4:-5}
read -r -a bins <<<"${ZSP:-$(command -v zsyncpipe)}"
w=$(mktemp -d /tmp/realpair.XXXXXX)
trap 'kill "$(cat "$w/nginx.pid" 2>/dev/null)" 2>/dev/null || true; sleep 0.2; rm -rf "$w"' EXIT
. "$(dirname "$0")/nginx.sh"
serve_new "$w" "$new" '$bytes_sent $request_uri'
cat "$old" "$new" >/dev/null # page cache

# timed NAME CMD… : one measured step; appends "wall cpu rss_kib" to $w/NAME.
timed() {
	local name=$1; shift
	/usr/bin/time -f '%e %U %S %M' -o "$w/t" "$@" >/dev/null 2>"$w/err" || { cat "$w/err" >&2; return 1; }
	awk '{printf "%.3f %.3f %d\n", $1, $2+$3, $4}' "$w/t" >>"$w/$name"
}
# stats NAME: min and median of each column.
stats() {
	local f=$w/$1 n; n=$(wc -l <"$f")
	for c in 1 2 3; do sort -n -k$c,$c "$f" | awk -v c=$c -v n="$n" '{v[NR]=$c} END {printf "%s %s ", v[1], v[int((n+1)/2)]}'; done
}
names=()
[ "${ZSYNC:-1}" = 1 ] && names+=(zsync)
for i in "${!bins[@]}"; do names+=("zsp$i"); done
bin_of() { local i=${1#zsp}; echo "${bins[$i]}"; }
floor_bin=${FLOOR_BIN:-${bins[-1]}}
read -r -a methods <<<"${FLOOR_METHODS:-hints flushes plain}"

if [ "${MAKE:-1}" = 1 ]; then
	for _ in $(seq "$runs"); do
		for n in "${names[@]}"; do
			if [ "$n" = zsync ]; then timed "make-$n" zsyncmake -b "$bs" -u "$url/new" -o "$w/www/$n.zsync" "$new"
			else timed "make-$n" "$(bin_of "$n")" make ${ZSP_MAKE_FLAGS:-} -b "$bs" -u "$url/new" -o "$w/www/$n.zsync" "$new"; fi
		done
	done
fi
for n in "${names[@]}"; do
	[ -e "$w/www/$n.zsync" ] && continue
	if [ "$n" = zsync ]; then zsyncmake -b "$bs" -u "$url/new" -o "$w/www/$n.zsync" "$new"
	else "$(bin_of "$n")" make ${ZSP_MAKE_FLAGS:-} -b "$bs" -u "$url/new" -o "$w/www/$n.zsync" "$new"; fi
done
if [ "${SYNC:-1}" = 1 ]; then
	for _ in $(seq "$runs"); do
		for n in "${names[@]}"; do
			rm -rf "$w/out"; mkdir "$w/out"; : >"$w/logs/access.log"
			if [ "$n" = zsync ]; then (cd "$w/out" && timed "sync-$n" zsync -q -i "$old" -o out "$url/$n.zsync")
			else timed "sync-$n" "$(bin_of "$n")" sync -q -i "$old" -o "$w/out/out" "$url/$n.zsync"; fi
			cmp -s "$w/out/out" "$new" || { echo "$n: output differs from $new" >&2; exit 1; }
			awk '{s+=$1} END {print s}' "$w/logs/access.log" >>"$w/down-$n"
		done
		if [ "${FLOOR:-1}" = 1 ]; then
			for m in "${methods[@]}"; do
				rm -rf "$w/out"; mkdir "$w/out"
				timed "sync-floor-$m" "$floor_bin" bench-child disk -method "$m" -o "$w/out/out" "$new"
			done
		fi
	done
fi
echo "# $(basename "$old") -> $(basename "$new"), blocksize $bs, $runs runs${ZSP_MAKE_FLAGS:+, zsyncpipe make $ZSP_MAKE_FLAGS}; $(uptime | sed 's/.*load/load/')"
printf '%-10s %-13s %15s %15s %17s %12s\n' tool step "wall min/med" "cpu min/med" "rss KiB min/med" "down bytes"
floors=(); [ "${FLOOR:-1}" = 1 ] && [ "${SYNC:-1}" = 1 ] && for m in "${methods[@]}"; do floors+=("floor-$m"); done
for n in "${names[@]}" "${floors[@]}"; do
	case $n in zsync | floor-*) label=${n%%-*} ;; *) label="$(basename "$(bin_of "$n")")" ;; esac
	for step in make sync; do
		[ -s "$w/$step-$n" ] || continue
		read -r a b c d e f <<<"$(stats "$step-$n")"
		dn=""; [ -s "$w/down-$n" ] && [ "$step" = sync ] && dn=$(sort -n "$w/down-$n" | head -1)
		case $n in floor-*) step=disk-${n#floor-} ;; esac
		printf '%-10s %-13s %7s %7s %7s %7s %8s %8s %12s\n' "$label" "$step" "$a" "$b" "$c" "$d" "$e" "$f" "$dn"
	done
done
# Each tool's sync over the disk floor: the fastest method's min and median.
if [ "${#floors[@]}" -gt 0 ]; then
	fa="" fb=""
	for n in "${floors[@]}"; do
		read -r a b _ <<<"$(stats "sync-$n")"
		fa=$(awk -v x="$fa" -v y="$a" 'BEGIN {print (x == "" || y < x) ? y : x}')
		fb=$(awk -v x="$fb" -v y="$b" 'BEGIN {print (x == "" || y < x) ? y : x}')
	done
	for n in "${names[@]}"; do
		[ -s "$w/sync-$n" ] || continue
		read -r a b _ <<<"$(stats "sync-$n")"
		label=$n; [ "$n" != zsync ] && label="$(basename "$(bin_of "$n")")"
		awk -v l="$label" -v a="$a" -v b="$b" -v fa="$fa" -v fb="$fb" 'BEGIN {
			printf "# %s sync / disk floor (%.3f %.3f): %.2fx (min) %.2fx (median)%s\n", l, fa, fb, a/fa, b/fb,
				l == "zsync" ? ": the most any durable tool can be faster than zsync here" : "" }'
	done
fi
