#!/usr/bin/env bash
# Paired rounds of bench/mirror.sh, with a summary (docs/trees.md, "Compared
# with rsync -a --delete"). One run of mirror.sh is one ratio to rsync, and
# on a shared machine one ratio says little: rsync alone varied from 1.7 to
# 4.7 s within an hour on the same trees, and the first mirror after a
# pause pays for memory the machine handed back to its host (docs/trees-measurements.md,
# "Where it stands"). This runs ROUNDS rounds, rotating the order of the
# binaries each round so that each runs first as often as the others, and
# prints one line per binary and round, then per binary: wall time, CPU,
# the ratios to rsync sorted, how many are at most 0.5, first against later
# positions, the bytes received against rsync's, and the second run (nothing
# changed): its wall time and requests, and what the whole machine spent
# during each run and rsync's: CPU and steal time (a round whose runs lost
# much to steal was slowed by the host, not by either tool).
# rsync runs before the mirrors in odd rounds and after them in even ones
# (RSYNC_ORDER=alternate, the default; first or last keeps one order): on
# this machine the run that comes second after the setup can pay several
# times more for the pages it writes than the first (docs/trees-measurements.md,
# "Where it stands: fifteenth session"), so a fixed order favours one
# side. The summary gives the ratios of each order apart.
# Usage: ZSP="/tmp/a/zsyncpipe /tmp/b/zsyncpipe" ROUNDS=10 bench/rounds.sh OLD NEW [WORK]
#   OLD, NEW, WORK as for bench/mirror.sh; ZSP defaults to zsyncpipe. Give
#   each binary its own path (a copy, or a script that execs it with
#   other flags or environment): they are told apart by path. FRESHFS
#   defaults to 1 here (every client on a new ext4 file system; needs root),
#   SETTLE to 3; MIRROR_FLAGS and the rest go to bench/mirror.sh as they
#   are. OUT=FILE also writes the per-round lines to FILE.
# Needs what bench/mirror.sh needs (rsync, nginx, GNU time).
set -euo pipefail
OLD=$1 NEW=$2 WORK=${3:-/tmp/zsyncpipe-bench-mirror}
read -r -a BINS <<<"${ZSP:-zsyncpipe}"
N=${ROUNDS:-10}
ORDER=${RSYNC_ORDER:-alternate}
case $ORDER in first | last | alternate) ;; *)
	echo "RSYNC_ORDER must be first, last or alternate, not $ORDER" >&2
	exit 2
	;;
esac
export FRESHFS=${FRESHFS-1} SETTLE=${SETTLE:-3}
here=$(cd "$(dirname "$0")" && pwd)
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
echo "$N rounds of bench/mirror.sh $OLD $NEW (FRESHFS=$FRESHFS SETTLE=$SETTLE${PRIOR:+ PRIOR=$PRIOR}), binaries in rotated order, rsync $ORDER"
printf '%-5s %-9s %-28s %3s %7s %6s %6s %9s %13s %-9s %s\n' round "rsync s" binary pos "wall s" ratio "cpu s" "RSS KiB" received identical "unchanged: wall s, requests; machine cpu s, steal s: this run, rsync's; rsync ran"
# machine prints the whole machine's CPU and steal time during the run
# whose line of bench/mirror.sh is $1 (see T there).
machine() { sed -n 's/.*, machine \([0-9.]*\) s cpu, \([0-9.]*\) s steal.*/\1 \2/p' <<<"$1"; }
for r in $(seq 1 "$N"); do
	k=$(((r - 1) % ${#BINS[@]}))
	order=("${BINS[@]:$k}" "${BINS[@]:0:$k}")
	rlast="" rpos=first
	if [ "$ORDER" = last ] || { [ "$ORDER" = alternate ] && [ $((r % 2)) = 0 ]; }; then
		rlast=1 rpos=last
	fi
	log=$(RSYNC_LAST="$rlast" ZSP="${order[*]}" bash "$here/mirror.sh" "$OLD" "$NEW" "$WORK" 2>&1) || {
		echo "round $r: bench/mirror.sh failed:" >&2
		echo "$log" | tail -20 >&2
		exit 1
	}
	# rsync -a --delete: 2.08 s wall, 0.21+0.95 s cpu, 16604 KiB RSS, Total bytes received: 148,466,705
	rline=$(grep -m1 '^rsync -a --delete: ' <<<"$log" || true)
	if [ -z "$rline" ]; then
		echo "round $r: no rsync result in the output of bench/mirror.sh" >&2
		exit 1
	fi
	rwall=$(echo "$rline" | awk '{print $4}')
	rbytes=$(echo "$rline" | sed 's/.*Total bytes received: //; s/,//g')
	rmach=$(machine "$rline")
	pos=0
	for b in "${order[@]}"; do
		pos=$((pos + 1))
		# BIN mirror --delete: 1.26 s wall, 1.07+0.89 s cpu, 72924 KiB RSS, bytes: … 144127724 received in 986 requests
		l=$(grep -F "$b mirror " <<<"$log" | grep -v 'nothing changed' | head -1 || true)
		if [ -z "$l" ]; then
			echo "round $r: no result of $b in the output of bench/mirror.sh" >&2
			exit 1
		fi
		wall=$(echo "$l" | sed 's/.*: \([0-9.]*\) s wall.*/\1/')
		cpu=$(echo "$l" | sed 's/.* \([0-9.]*\)+\([0-9.]*\) s cpu.*/\1 \2/' | awk '{printf "%.2f", $1 + $2}')
		rss=$(echo "$l" | sed 's/.* \([0-9]*\) KiB RSS.*/\1/')
		recv=$(echo "$l" | sed 's/.* \([0-9]*\) received in.*/\1/')
		same=no
		grep -qF "$b: result identical" <<<"$log" && same=yes
		# the second run, with nothing changed: BIN mirror --delete (nothing changed): 0.00 s wall, … 183 received in 1 requests
		u=$(grep -F "$b mirror " <<<"$log" | grep 'nothing changed' | head -1 || true)
		uwall=$(echo "$u" | sed 's/.*: \([0-9.]*\) s wall.*/\1/')
		ureq=$(echo "$u" | sed 's/.* received in \([0-9]*\) request.*/\1/')
		ratio=$(awk -v a="$wall" -v b="$rwall" 'BEGIN{printf "%.3f", a / b}')
		mach=$(machine "$l")
		row=$(printf '%-5s %-9s %-28s %3s %7s %6s %6s %9s %13s %-9s %s %s %s %s' "$r" "$rwall" "$b" "$pos" "$wall" "$ratio" "$cpu" "$rss" "$recv" "$same" "$uwall" "$ureq" "${mach:-- -}" "${rmach:-- -}")
		echo "$row $rpos"
		echo "$row $rbytes $rpos" >>"$lines"
	done
done
[ -n "${OUT:-}" ] && cp "$lines" "$OUT"
echo
for b in "${BINS[@]}"; do
	awk -v b="$b" '
	# isort sorts a[1..n] (insertion sort: a few dozen rounds).
	function isort(a, n, i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j-1]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	}
	# order prints the rounds in which rsync ran k (first or last): their m
	# ratios a, sorted, and the CPU this binary, the machine during it and
	# the machine during rsync spent, summed over those rounds.
	function order(k, a, m, cpu, mcpu, rmcpu, i, l, c) {
		if (m == 0) return
		isort(a, m)
		for (i = 1; i <= m; i++) { l = l " " a[i]; if (a[i] <= 0.5) c++ }
		printf "  rsync %s (%d rounds): %d at most 0.5; CPU %.2f s mean, the machine %.2f s during this binary, %.2f s during rsync; ratios:%s\n", k, m, c, cpu / m, mcpu / m, rmcpu / m, l
	}
	$3 == b {
		n++; wall[n] = $5; ratio[n] = $6; cpu += $7; rss = $8 > rss ? $8 : rss
		if ($4 == 1) { first += $5; nf++ } else { later += $5; nl++ }
		if ($6 <= 0.5) le++
		if ($9 > recv) recv = $9
		if ($17 > rrecv) rrecv = $17
		mcpu += $13; steal += $14; rmcpu += $15; rsteal += $16
		if ($11 > uwall) uwall = $11
		if ($12 > ureq) ureq = $12
		if ($10 != "yes") bad++
		# by where rsync ran in the round: first (before the mirrors) or last
		if ($18 == "last") { lr[++nlr] = $6; lcpu += $7; lmcpu += $13; lrmcpu += $15 }
		else { fr[++nfr] = $6; fcpu += $7; fmcpu += $13; frmcpu += $15 }
	}
	END {
		if (n == 0) exit
		isort(ratio, n)
		isort(wall, n)
		for (i = 1; i <= n; i++) { sum += wall[i]; list = list (i > 1 ? " " : "") ratio[i] }
		med = n % 2 ? ratio[(n + 1) / 2] : (ratio[n / 2] + ratio[n / 2 + 1]) / 2
		printf "%s: %d rounds; wall %.2f s mean, %.2f-%.2f s; CPU %.2f s mean; peak RSS %d KiB\n", b, n, sum / n, wall[1], wall[n], cpu / n, rss
		printf "  ratio to rsync: median %.3f, %d of %d at most 0.5; sorted: %s\n", med, le, n, list
		if (nf && nl) printf "  wall as the first mirror of a round %.2f s mean (%d), later %.2f s (%d)\n", first / nf, nf, later / nl, nl
		order("first", fr, nfr, fcpu, fmcpu, frmcpu)
		order("last", lr, nlr, lcpu, lmcpu, lrmcpu)
		printf "  nothing changed (the second run): at most %.2f s, %d requests\n", uwall, ureq
		printf "  the machine meanwhile (mean): %.2f s CPU, %.2f s steal; during rsync %.2f s CPU, %.2f s steal\n", mcpu / n, steal / n, rmcpu / n, rsteal / n
		printf "  received at most %d bytes, rsync %d (%.3fx)%s\n", recv, rrecv, recv / rrecv, bad ? "; " bad " results NOT identical to the published tree" : "; every result identical to the published tree"
	}' "$lines"
done
