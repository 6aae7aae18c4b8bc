#!/usr/bin/env bash
# zsyncpipe mirror against rsync -a --delete from an rsync daemon, one run
# side by side (docs/trees.md, "Compared with rsync -a --delete").
# Usage: ZSP="/tmp/a/zsyncpipe /tmp/b/zsyncpipe" bench/mirror.sh OLD NEW [WORK]
#   OLD, NEW: directory trees (e.g. /work/data/trees/go1.22.12 and go1.24.5);
#   OLD may be "empty" for a first copy. Each zsyncpipe binary publishes its
#   own copy of NEW (zsyncpipe index), served by nginx on loopback; rsync
#   serves NEW from a daemon on loopback. Every client starts from a cp -a
#   of OLD. MIRROR_FLAGS adds flags to every mirror run (default --delete).
#   RSYNC_Z=1 also runs rsync -az (compressed) from the same starting copy.
#   RSYNC_LAST=1 runs rsync after the mirrors instead of before them: which
#   run pays most for the setup depends on the hour (ext4 without a journal,
#   docs/trees.md "What a mirror writes"; memory the host takes back,
#   docs/trees-measurements.md "Where it stands: fifteenth session"), so bench/rounds.sh alternates.
#   FRESHFS=1 gives every client directory its own new ext4 filesystem
#   (a loop-mounted image in WORK, made with mkfs.ext4 -O ^has_journal like
#   this machine's root; FRESHFS=journal keeps ext4's default journal), so
#   that no run pays for inodes freed before it (the setup's rm -rf and
#   copies, or the run before it) and a journaled filesystem, the common
#   case on users' machines, can be measured too. Needs root (mount).
#   The loop device does direct I/O (LOOP_DIO=off for the page cache of
#   the image file): a flush then writes to the disk once, as on a disk of
#   its own, instead of copying into the image file's cache first and
#   flushing that too (which doubled the cost of every syncfs here).
#   PERF=FILE records every first mirror run with perf record -a -g into
#   FILE.1, FILE.2… (the whole machine: nginx and the kernel too).
#   SETTLE=N syncs and waits N seconds before every timed run (default 1):
#   with N >= 35 no run pays for the inodes the setup or the run before it
#   freed (ext4 without a journal skips inodes freed in the last 30 s, and
#   60 s while their table block is dirty; see docs/trees.md).
#   PRIOR=mirror starts each mirror client from a tree it mirrored itself
#   (untimed) from a publication of OLD, at another URL, instead of a cp -a:
#   the same files, modes and mtimes as rsync's cp -a, plus the state a
#   mirror keeps (docs/trees.md, "One run", step 3), as when a tree kept
#   with zsyncpipe is moved to the next release. rsync starts from cp -a
#   of OLD either way.
#   COLDMEM=1 runs bench/coldmem before every timed run (built with go
#   build): it takes and holds the memory the machine used last, so that
#   each run, rsync's and the mirrors', gets only memory not touched for a
#   while, as when the host has taken back the guest's free memory (the
#   state in which the mirror was slowest here: docs/trees-measurements.md,
#   "Where it stands: nineteenth session"). COLDMEM_MS sets its threshold.
# Prints wall, CPU (user+sys), max RSS, the machine's CPU and steal time
# meanwhile (see T) and bytes received for each, then
# the same for a second run with nothing changed. Needs rsync, nginx, GNU time.
set -euo pipefail
OLD=$1 NEW=$2 B=${3:-/tmp/zsyncpipe-bench-mirror}
ZSP=${ZSP:-zsyncpipe}
FLAGS=${MIRROR_FLAGS:---delete}
NGINX=${NGINX:-/usr/sbin/nginx}
findmnt -rn -o TARGET | grep "^$B/" | xargs -r umount 2>/dev/null || true
rm -rf "$B" && mkdir -p "$B"
MOUNTS=() LOOPS=()
start() { # copy OLD into $1
	mkdir -p "$1"
	if [ -n "${FRESHFS:-}" ]; then # a new filesystem for this client
		img="$B/fs-$(basename "$1").img"
		rm -f "$img" && truncate -s 8G "$img"
		if [ "$FRESHFS" = journal ]; then mkfs.ext4 -q -F "$img"; else mkfs.ext4 -q -F -O ^has_journal "$img"; fi
		# direct I/O: the loop device writes to the disk once, as a
		# filesystem on a disk does, not into the page cache of the image
		# file first (a second copy, and a second flush on every syncfs)
		dev=$(losetup -f --show --direct-io="${LOOP_DIO:-on}" "$img")
		mount "$dev" "$1"
		MOUNTS+=("$1")
		LOOPS+=("$dev")
	fi
	if [ -n "${2:-}" ]; then # PRIOR=mirror: $2 mirrors OLD from URL $3
		"$2" mirror -q --delete "$3" "$1"
	elif [ "$OLD" != empty ]; then cp -a "$OLD/." "$1" && chmod -R u+w "$1"; fi
}
# mstat prints the machine's busy CPU time (user, nice, system, irq,
# softirq) and its steal time, in ticks of /proc/stat (1/100 s).
mstat() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9; exit}' /proc/stat; }
# T runs a timed command: wall, CPU and peak RSS of the command, then what
# the whole machine spent meanwhile (the command, its server: nginx or the
# rsync daemon, the kernel's threads) and the CPU time the hypervisor gave
# to others (steal: a run with much of it was slowed by the host).
T() {
	local a b hog=""
	if [ -n "${COLDMEM:-}" ]; then
		rm -f "$B/coldmem.ready"
		"$B/coldmem" "$B/coldmem.ready" "${COLDMEM_MS:-100}" &
		hog=$!
		for _ in $(seq 1 600); do [ -s "$B/coldmem.ready" ] && break; sleep 0.1; done
	fi
	a=$(mstat)
	/usr/bin/time -f "%e s wall, %U+%S s cpu, %M KiB RSS" -o "$B/time" "$@"
	b=$(mstat)
	if [ -n "$hog" ]; then kill "$hog" && wait "$hog" 2>/dev/null || true; fi
	local t
	t=$(cat "$B/time")
	echo "$a $b" | awk -v t="$t" '{printf "%s, machine %.2f s cpu, %.2f s steal\n", t, ($3 - $1) / 100, ($4 - $2) / 100}' >"$B/time"
}
cleanup() {
	kill "${PIDS[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
	for d in "${LOOPS[@]}"; do losetup -d "$d" 2>/dev/null || true; done
	rm -f "$B"/fs-*.img
}
PIDS=()
trap cleanup EXIT
if [ -n "${COLDMEM:-}" ]; then (cd "$(dirname "$0")/coldmem" && go build -o "$B/coldmem" .); fi
mkdir -p "$B/pub-rsync" && cp -a "$NEW/." "$B/pub-rsync"
printf 'use chroot = no\nuid = %d\ngid = %d\npid file = %s/rsyncd.pid\n[tree]\npath = %s/pub-rsync\nread only = yes\n' \
	"$(id -u)" "$(id -g)" "$B" "$B" >"$B/rsyncd.conf"
# Ports below Linux's ephemeral range (32768 up, by default): a random
# port in it can still be held by a connection of an earlier run.
RPORT=$((10000 + RANDOM % 10000))
rsync --daemon --no-detach --config="$B/rsyncd.conf" --address=127.0.0.1 --port=$RPORT &
PIDS+=($!)
i=0
for z in $ZSP; do
	i=$((i + 1))
	mkdir -p "$B/pub$i" "$B/ng$i"
	cp -a "$NEW/." "$B/pub$i"
	"$z" index -q --no-fsync "$B/pub$i"
	port=$((20000 + RANDOM % 10000 + i))
	echo "$port" >"$B/ng$i/port"
	oldsrv="" # PRIOR=mirror: OLD published too, one port up
	if [ "${PRIOR:-}" = mirror ]; then
		if [ "$OLD" = empty ]; then
			echo "PRIOR=mirror needs an old tree, not empty" >&2
			exit 2
		fi
		mkdir -p "$B/old$i" && cp -a "$OLD/." "$B/old$i"
		"$z" index -q --no-fsync "$B/old$i"
		oldsrv="server { listen 127.0.0.1:$((port + 1)); root $B/old$i; }"
	elif [ -n "${PRIOR:-}" ]; then
		echo "PRIOR must be mirror or empty, not $PRIOR" >&2
		exit 2
	fi
	cat >"$B/ng$i/nginx.conf" <<EOC
worker_processes 2; daemon off; pid $B/ng$i/nginx.pid; error_log $B/ng$i/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; root $B/pub$i; }
  $oldsrv
  client_body_temp_path $B/ng$i; proxy_temp_path $B/ng$i; fastcgi_temp_path $B/ng$i; uwsgi_temp_path $B/ng$i; scgi_temp_path $B/ng$i; }
EOC
	"$NGINX" -c "$B/ng$i/nginx.conf" -p "$B/ng$i" &
	PIDS+=($!)
	if [ -n "$oldsrv" ]; then
		for _ in $(seq 1 100); do (: <"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null && break; sleep 0.05; done
		start "$B/m$i" "$z" "http://127.0.0.1:$((port + 1))/"
	else
		start "$B/m$i"
	fi
done
start "$B/r"
settle() { sync && sleep "${SETTLE:-1}"; }
echo "load before: $(uptime)"
rs() {
	settle
	T rsync -a --delete --stats "rsync://127.0.0.1:$RPORT/tree/" "$B/r/" >"$B/rsync.out"
	echo "rsync -a --delete$1: $(cat "$B/time"), $(grep 'Total bytes received' "$B/rsync.out")"
}
zs() { # $2: suffix of the output files (the first run's are m1.out, m2.out…)
	i=0
	for z in $ZSP; do
		i=$((i + 1))
		settle
		# shellcheck disable=SC2086
		P=()
		if [ -n "${PERF:-}" ] && [ -z "${2:-}" ]; then P=(perf record -q -a -g -o "$PERF.$i" --); fi
		T "${P[@]}" "$z" mirror -v $FLAGS "http://127.0.0.1:$(cat "$B/ng$i/port")/" "$B/m$i" >"$B/m$i${2:-}.out"
		echo "$z mirror $FLAGS$1: $(cat "$B/time"), $(grep '^bytes' "$B/m$i${2:-}.out")"
	done
}
[ -z "${RSYNC_LAST:-}" ] && rs ""
if [ -n "${RSYNC_Z:-}" ]; then # rsync -z too: it compresses what it sends, as packs do
	rm -rf "$B/r" && start "$B/r"
	settle
	T rsync -az --delete --stats "rsync://127.0.0.1:$RPORT/tree/" "$B/r/" >"$B/rsync.out"
	echo "rsync -az --delete: $(cat "$B/time"), $(grep 'Total bytes received' "$B/rsync.out")"
fi
zs ""
[ -n "${RSYNC_LAST:-}" ] && rs ""
zs " (nothing changed)" .nochange
rs " (nothing changed)"
echo "load after: $(uptime)"
i=0
for z in $ZSP; do
	i=$((i + 1))
	diff -r --exclude=lost+found --exclude=.zsyncpipe --exclude=.zsyncpipe-mirror "$B/pub$i" "$B/m$i" >/dev/null && echo "$z: result identical to the published tree (diff -r)"
done
