#!/usr/bin/env bash
# The encfs benchmark (issue 4 item 8, issue 5 item 7). Run as root from anywhere:
#
#   sudo scripts/bench.sh [--quick]
#
# In one run, on the same data, with the page cache dropped before every cold measurement:
#   1. sequential read of one large file (2 GiB) with 1 MiB read(2) calls: the plain file on
#      disk, encfs, gocryptfs and a no-crypto go-fuse loopback mount of the plain directory;
#   2. 8 parallel readers over 10,000 files of 100 KiB in shuffled order (an ML data loader);
#   3. mount latency and resident memory of encfs on an image of 1,000,000 small files;
#   4. streaming from Azurite: sequential read through `encfs mount URL` against a plain
#      parallel azblob download of the same blob, and the time from `encfs mount URL` to the
#      first byte of a file.
#   5. training epochs from Azurite: scripts/epoch.py (8 forked workers, as a PyTorch DataLoader)
#      reads every file once in shuffled order through a fresh `encfs mount URL` with default
#      flags (epoch 1), then again (epoch 2), for 100 KiB and for 2 MiB files, each dataset at
#      least 4 times the mount's memory budget; against the plain download of the same blob, the
#      same epoch on the image mounted from a local file, and the same epoch over the plain files,
#      directly (the reader's own cost on its core) and through the go-fuse loopback (what FUSE
#      adds). Azurite runs on CPU 1 (always, in
#      every part), the reader, encfs and the downloader on CPU 0 (taskset), in parts 4 and 5.
#   6. read-write volumes: fio sequential 1 MiB writes (end_fsync), random 4 KiB direct writes and
#      reads (libaio, iodepth 16, time-based), and a metadata workload (untar Go's source tree,
#      sync, rm -rf, sync) on: an encfs volume on a local file; the same loop + ext4 + FUSE stack
#      over a plain file without cryptography (benchread plainvol); gocryptfs over a local
#      directory; plain ext4 on a loop device over a local file; an encfs volume in Azurite (page
#      blob). Each with the daemon's CPU time and peak RSS.
# It prints a markdown report and writes it, dated, with SVG charts of each benchmark (encfs
# against gocryptfs, the loopback and the plain file or download, drawn by scripts/benchchart):
#   docs/bench/YYYY-MM-DD-HHMM.md and docs/bench/YYYY-MM-DD-HHMM-{sequential,shuffled,streaming}.svg
# (UTC, the run's start). docs/PERFORMANCE.md links the runs it quotes; commit the ones it should.
# After each part it also writes the report of the parts done so far to the work directory's
# report.md, so that a run cut short keeps what it measured.
#
# Options and environment:
#   --quick, BENCH_QUICK=1   small sizes for a quick run (256 MiB file, 1,000 small files,
#                            10,000-file image)
#   BENCH_OUT                where the dated report and charts go (default docs/bench for a full
#                            run; the work directory below for --quick or BENCH_SKIP runs, which
#                            are not comparable with full ones)
#   --prepare                only build the tools and generate the data and images, then stop
#   BENCH_DIR                work directory (default /var/tmp/encfs-bench); generated data, images
#                            and binaries are kept there and reused by later runs
#   BENCH_RUNS               runs per measurement, the median is reported (default 3)
#   BENCH_BIG_MIB, BENCH_SMALL_COUNT, BENCH_TREE_DIRS, BENCH_TREE_FILES   override sizes
#   BENCH_EPOCH_MIB          size of each training-epoch dataset (default 3072; 256 with --quick)
#   BENCH_SKIP               comma-separated parts to skip: seq,seqwarm,shuffle,tree,blob,epoch,volume,gocryptfs
#   BENCH_VOL_RUNTIME        seconds of each random 4 KiB fio run on volumes (default 60; 10 with --quick)
#   BENCH_VOL_TARGETS        volume targets (default volume,volume-prealloc,plainvol,gocryptfs,ext4,volume-azurite)
#   BENCH_REPACK=1           pack the encfs images again even if the cached ones open
#   BENCH_PERF=1             record `perf record -a -g` (whole machine) during the first cold
#                            sequential and shuffled runs of encfs (BENCH_DIR/.../perf-*.data;
#                            `perf report -i FILE --sort comm,sym`)
#
# Everything it mounts is unmounted and every process it starts is stopped (by recorded pid)
# on exit, on error and on Ctrl-C.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREPARE=0
QUICK="${BENCH_QUICK:-0}"
for a in "$@"; do
	case "$a" in
	--prepare) PREPARE=1 ;;
	--quick) QUICK=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "bench.sh: unknown argument $a (see --help)" >&2
		exit 2
		;;
	esac
done
if [[ $(id -u) -ne 0 ]]; then
	echo "bench.sh: run as root (it mounts FUSE filesystems and drops the page cache)" >&2
	exit 1
fi
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"

RUNS="${BENCH_RUNS:-3}"
if [[ "$QUICK" == 1 ]]; then
	MODE=quick
	BIG_MIB="${BENCH_BIG_MIB:-256}"
	SMALL_COUNT="${BENCH_SMALL_COUNT:-1000}"
	TREE_DIRS="${BENCH_TREE_DIRS:-100}"
	TREE_FILES="${BENCH_TREE_FILES:-100}"
	EPOCH_MIB="${BENCH_EPOCH_MIB:-256}"
else
	MODE=full
	BIG_MIB="${BENCH_BIG_MIB:-2048}"
	SMALL_COUNT="${BENCH_SMALL_COUNT:-10000}"
	TREE_DIRS="${BENCH_TREE_DIRS:-1000}"
	TREE_FILES="${BENCH_TREE_FILES:-1000}"
	EPOCH_MIB="${BENCH_EPOCH_MIB:-3072}"
fi
if [[ "$QUICK" == 1 ]]; then
	VOL_SEQ_MIB=256 VOL_RAND_MIB=256 VOL_RUNTIME="${BENCH_VOL_RUNTIME:-10}"
else
	VOL_SEQ_MIB=2048 VOL_RAND_MIB=1024 VOL_RUNTIME="${BENCH_VOL_RUNTIME:-60}"
fi
VOL_MIB=$((VOL_SEQ_MIB + VOL_RAND_MIB + 1024)) # room for both fio files and the untarred tree
SMALL_BYTES=102400
TREE_BYTES=100
JOBS=8
SKIP=",${BENCH_SKIP:-},"

WORK="${BENCH_DIR:-/var/tmp/encfs-bench}"
case "$WORK" in "$REPO" | "$REPO"/*)
	echo "bench.sh: BENCH_DIR must be outside the repository" >&2
	exit 1
	;;
esac
BIN="$WORK/bin"
D="$WORK/$MODE-${BIG_MIB}m-${SMALL_COUNT}f-${TREE_DIRS}x${TREE_FILES}"
RUN="$D/run" # logs, pid and ready files of this run
MNT="$D/mnt"
KEY="$WORK/key"
PLAIN="$D/plain"
IMG="$D/data.img"
TREE="$D/tree"
TREE_IMG="$D/tree.img"
CIPHER="$D/gocryptfs"
LIST="$D/small.list"
BIGREL="big.bin"
GOCRYPTFS_PW="echo pw"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skip() { [[ "$SKIP" == *",$1,"* ]]; }

# ---- cleanup: everything started or mounted is recorded here --------------------------------
PIDS=()   # daemons (encfs, gocryptfs, loopback, Azurite)
MOUNTS=() # mount points
AZ_PID=""

unmount_dir() { # unmount $1 if mounted: retry while busy, then detach lazily
	local m="$1" i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		mountpoint -q "$m" 2>/dev/null || return 0
		umount "$m" 2>/dev/null && return 0
		sleep 0.3
	done
	log "unmount $m: still busy, detaching lazily"
	umount -l "$m" 2>/dev/null || true
}

wait_pid() { # wait up to $2 tenths of a second for pid $1 to exit
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

stop_pid() { # SIGTERM, then SIGKILL after 10 s
	local p="$1"
	[[ -n "$p" ]] || return 0
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	if ! wait_pid "$p" 100; then
		log "pid $p ignored SIGTERM for 10 s: killing it"
		kill -KILL "$p" 2>/dev/null || true
	fi
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	local rc=$? p m
	trap - EXIT INT TERM
	set +e
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done # encfs unmounts itself on SIGTERM
	for m in "${MOUNTS[@]}"; do unmount_dir "$m"; done
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	if [[ -n "${VOL_LOOP:-}" ]]; then # the plain ext4 volume target
		unmount_dir "$MNT/vol-ext4"
		losetup -d "$VOL_LOOP"
	fi
	if [[ -n "$AZ_PID" ]]; then
		kill -TERM -- "-$AZ_PID" 2>/dev/null # its own process group (setsid)
		wait_pid "$AZ_PID" 50 || kill -KILL -- "-$AZ_PID" 2>/dev/null
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

kv() { # kv KEY "k=v k=v ..." prints the value of KEY
	local x
	for x in $2; do
		if [[ "$x" == "$1="* ]]; then
			printf '%s' "${x#*=}"
			return 0
		fi
	done
	printf 'n/a'
}

median() { # median of the numeric arguments ("n/a" when there are none)
	if [[ $# -eq 0 ]]; then
		printf 'n/a'
		return
	fi
	printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'
}

spread() { # spread VALUES...: "min-max" of the numeric arguments, rounded
	if [[ $# -eq 0 ]]; then
		printf 'n/a'
		return
	fi
	printf '%s\n' "$@" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo, hi}'
}

calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; } # calc EXPR [DECIMALS]
fmt0() { if [[ "$1" == n/a ]]; then printf 'n/a'; else calc "$1" 0; fi; }

# ---- mounts ----------------------------------------------------------------------------------
# Each start_* mounts through `benchread start`, which times it and leaves the daemon running;
# STARTED holds its key=value output, MPID the daemon's pid.
STARTED=""
MPID=""

start_daemon() { # start_daemon NAME MOUNTPOINT [benchread start flags] -- CMD ...
	local name="$1" mnt="$2"
	shift 2
	mkdir -p "$mnt"
	unmount_dir "$mnt"
	MOUNTS+=("$mnt")
	rm -f "$RUN/$name.pid"
	if ! STARTED="$("$BIN/benchread" start --pidfile "$RUN/$name.pid" --log "$RUN/$name.log" "$@")"; then
		[[ -s "$RUN/$name.pid" ]] && PIDS+=("$(cat "$RUN/$name.pid")")
		log "$name: mount failed; the end of $RUN/$name.log:"
		tail -5 "$RUN/$name.log" >&2 || true
		return 1
	fi
	MPID="$(kv pid "$STARTED")"
	PIDS+=("$MPID")
}

mount_encfs() { # mount_encfs NAME IMAGE-OR-URL MOUNTPOINT [benchread start flags]
	local name="$1" img="$2" mnt="$3"
	shift 3
	start_daemon "$name" "$mnt" --ready-file "$RUN/$name.ready" "$@" -- \
		"$BIN/encfs" --log-format text mount --key-file "$KEY" --ready-file "$RUN/$name.ready" \
		${ENCFS_METRICS:+--metrics-addr "$ENCFS_METRICS"} "$img" "$mnt"
}

mount_gocryptfs() {
	start_daemon gocryptfs "$1" --wait-mount "$1" -- gocryptfs -fg -extpass "$GOCRYPTFS_PW" -quiet "$CIPHER" "$1"
}

mount_loopback() {
	start_daemon loopback "$1" --wait-mount "$1" -- "$BIN/loopback" -q -ro -directmount "$1" "$PLAIN"
}

mount_target() { # mount_target TARGET: mounts encfs|gocryptfs|loopback at $MNT/TARGET
	case "$1" in
	encfs) mount_encfs encfs "$IMG" "$MNT/encfs" ;;
	gocryptfs) mount_gocryptfs "$MNT/gocryptfs" ;;
	loopback) mount_loopback "$MNT/loopback" ;;
	esac
}

unmount_target() { # unmount_target MOUNTPOINT: stop the daemon MPID (encfs unmounts on SIGTERM)
	local mnt="$1"
	if [[ -n "$MPID" ]]; then
		kill -TERM "$MPID" 2>/dev/null || true
		wait_pid "$MPID" 50 || true
	fi
	unmount_dir "$mnt"
	stop_pid "$MPID"
	MPID=""
}

target_root() { # the directory a target serves the data at
	case "$1" in
	plain) printf '%s' "$PLAIN" ;;
	*) printf '%s' "$MNT/$1" ;;
	esac
}

read_ahead_of() { # read_ahead_kb of the filesystem at $1
	local dev
	dev="$(mountpoint -d "$1" 2>/dev/null)" || {
		printf 'n/a'
		return
	}
	cat "/sys/class/bdi/$dev/read_ahead_kb" 2>/dev/null || printf 'n/a'
}

# ---- tools -----------------------------------------------------------------------------------
install_tools() {
	local pkgs=()
	command -v gocryptfs >/dev/null || pkgs+=(gocryptfs)
	command -v fusermount3 >/dev/null || pkgs+=(fuse3) # gocryptfs mounts through fusermount
	skip volume || command -v fio >/dev/null || pkgs+=(fio)
	if [[ ${#pkgs[@]} -gt 0 ]]; then
		log "installing ${pkgs[*]} with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >"$WORK/apt.log" 2>&1 ||
			{
				apt-get update -q >>"$WORK/apt.log" 2>&1
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >>"$WORK/apt.log" 2>&1
			}
	fi
	log "building encfs, benchread and the go-fuse loopback example into $BIN"
	(
		cd "$REPO"
		go build -o "$BIN/encfs" ./cmd/encfs
		go build -o "$BIN/benchread" ./scripts/benchread
		go build -o "$BIN/benchchart" ./scripts/benchchart
		# The example ships in go-fuse's module (already in go.mod); build it from the module cache.
		go build -o "$BIN/loopback" github.com/hanwen/go-fuse/v2/example/loopback
	)
}

# ---- data (generated once per size, kept in $D) -----------------------------------------------
prepare_data() {
	[[ -s "$KEY" ]] || "$BIN/encfs" keygen --out "$KEY" >/dev/null
	if [[ ! -e "$D/.plain-done" ]]; then
		log "generating $BIG_MIB MiB file and $SMALL_COUNT files of $SMALL_BYTES bytes in $PLAIN"
		rm -rf "$PLAIN" "$IMG" "$CIPHER" "$D/.gocryptfs-done"
		mkdir -p "$PLAIN"
		"$BIN/benchread" genbig "$PLAIN/$BIGREL" "$((BIG_MIB << 20))" >/dev/null
		"$BIN/benchread" gensmall "$PLAIN/small" "$SMALL_COUNT" "$SMALL_BYTES" >/dev/null
		"$BIN/benchread" list "$PLAIN" "$D/all.list" >/dev/null
		grep '^small/' "$D/all.list" >"$LIST"
		touch "$D/.plain-done"
	fi
	if [[ "${BENCH_REPACK:-0}" == 1 ]] || ! "$BIN/encfs" inspect --key-file "$KEY" "$IMG" >/dev/null 2>&1; then
		log "packing $PLAIN into $IMG"
		rm -f "$IMG"
		"$BIN/encfs" --log-format text pack --key-file "$KEY" "$PLAIN" "$IMG" >"$D/pack.log"
	fi
	if ! skip gocryptfs && [[ ! -e "$D/.gocryptfs-done" ]]; then
		log "creating the gocryptfs copy in $CIPHER"
		rm -rf "$CIPHER"
		mkdir -p "$CIPHER"
		gocryptfs -init -extpass "$GOCRYPTFS_PW" -quiet "$CIPHER" >/dev/null
		mount_gocryptfs "$MNT/gocryptfs"
		cp -a "$PLAIN/." "$MNT/gocryptfs/"
		sync
		unmount_target "$MNT/gocryptfs"
		touch "$D/.gocryptfs-done"
	fi
	if ! skip tree; then
		if [[ ! -e "$D/.tree-done" ]]; then
			log "generating $TREE_DIRS x $TREE_FILES files of about $TREE_BYTES bytes in $TREE"
			rm -rf "$TREE" "$TREE_IMG"
			"$BIN/benchread" gentree "$TREE" "$TREE_DIRS" "$TREE_FILES" "$TREE_BYTES" >/dev/null
			touch "$D/.tree-done"
		fi
		if [[ "${BENCH_REPACK:-0}" == 1 ]] || ! "$BIN/encfs" inspect --key-file "$KEY" "$TREE_IMG" >/dev/null 2>&1; then
			log "packing $TREE into $TREE_IMG"
			rm -f "$TREE_IMG"
			local t0
			t0=$(date +%s.%N)
			"$BIN/encfs" --log-format text pack --key-file "$KEY" "$TREE" "$TREE_IMG" >"$D/tree-pack.log"
			calc "$(date +%s.%N) - $t0" 1 >"$D/tree-pack.secs"
		fi
	fi
}

# ---- 1. sequential -----------------------------------------------------------------------------
declare -A SEQ SEQ_R SEQ_CPU SEQ_CACHE RA REQKB SHUF_FPS SHUF_FPS_R SHUF_MBPS
TARGETS=(plain encfs gocryptfs loopback)
skip gocryptfs && TARGETS=(plain encfs loopback)

encfs_request_kb() { # average read request size seen by the encfs daemon, from its metrics
	local port="$1" m bytes reqs
	m="$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null)" || {
		printf 'n/a'
		return
	}
	bytes="$(awk '/^encfs_read_bytes_total/ {s+=$2} END {print s+0}' <<<"$m")"
	reqs="$(awk '/^encfs_read_requests_total/ {s+=$2} END {print s+0}' <<<"$m")"
	if [[ "$reqs" == 0 ]]; then printf 'n/a'; else calc "$bytes / $reqs / 1024" 0; fi
}

free_port() { "$BIN/benchread" freeport; }

# With BENCH_PERF=1, the first run of encfs is recorded machine-wide into $D/perf-NAME.data.
PERF_PID=""
perf_start() { # perf_start NAME TARGET RUN
	[[ "${BENCH_PERF:-0}" == 1 && "$2" == encfs && "$3" == 1 ]] || return 0
	perf record -q -a -g -F 1999 -o "$D/perf-$1.data" 2>/dev/null &
	PERF_PID=$!
	sleep 0.2
}
perf_stop() {
	[[ -n "$PERF_PID" ]] || return 0
	kill -INT "$PERF_PID"
	wait "$PERF_PID" || true
	PERF_PID=""
}

# CPU time and page cache, for the efficiency columns: unlike MB/s they barely move when the
# host steals time from this VM.
TICK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # user+system of PID
cached_kib() { awk '/^Cached:/ {print $2}' /proc/meminfo; }
steal_pct() { # steal_pct "CPU-LINE-BEFORE": share of the machine's time stolen by the host since
	awk -v a="$1" '/^cpu / { split(a, x); t = 0; for (i = 2; i <= 9; i++) t += $i - x[i]; if (t > 0) printf "%.0f", 100 * ($9 - x[9]) / t; else printf "n/a" }' /proc/stat
}

bench_seq() {
	local r t out port c0 k0
	declare -A all cpu cache
	for ((r = 1; r <= RUNS; r++)); do
		for t in "${TARGETS[@]}"; do # round robin, so load changes hit every target alike
			port=""
			if [[ "$t" == encfs ]]; then
				port="$(free_port)"
				ENCFS_METRICS="127.0.0.1:$port" mount_target encfs
			elif [[ "$t" != plain ]]; then
				mount_target "$t"
			fi
			if [[ "$t" != plain ]]; then RA[$t]="$(read_ahead_of "$MNT/$t")"; fi
			drop_caches
			perf_start seq "$t" "$r"
			c0="$(cpu_ticks "${MPID:-0}")" k0="$(cached_kib)"
			out="$("$BIN/benchread" seq "$(target_root "$t")/$BIGREL")"
			if [[ "$t" != plain ]]; then
				cpu[$t]="${cpu[$t]:-} $(calc "($(cpu_ticks "$MPID") - $c0) / $TICK / $BIG_MIB * 1024" 2)"
			fi
			cache[$t]="${cache[$t]:-} $(calc "($(cached_kib) - $k0) / 1024" 0)"
			perf_stop
			log "seq $t run $r: $out"
			all[$t]="${all[$t]:-} $(kv mbps "$out")"
			if [[ "$t" == encfs ]]; then REQKB[encfs]="$(encfs_request_kb "$port")"; fi
			if [[ "$t" != plain ]]; then unmount_target "$MNT/$t"; fi
		done
	done
	for t in "${TARGETS[@]}"; do
		# shellcheck disable=SC2086
		SEQ[$t]="$(median ${all[$t]})"
		# shellcheck disable=SC2086
		SEQ_R[$t]="$(spread ${all[$t]})"
		# shellcheck disable=SC2086
		SEQ_CPU[$t]="$(median ${cpu[$t]:-n/a})"
		# shellcheck disable=SC2086
		SEQ_CACHE[$t]="$(median ${cache[$t]})"
	done
}

# The same with the backing file already in the page cache (the FUSE filesystem itself
# mounted afresh, so its own cache is cold): what each filesystem costs once the disk is out
# of the way.
declare -A SEQW SEQW_R
backing_of() {
	case "$1" in
	encfs) printf '%s' "$IMG" ;;
	loopback) printf '%s' "$PLAIN/$BIGREL" ;;
	gocryptfs) find "$CIPHER" -type f -size +$((BIG_MIB / 2))M | head -1 ;;
	esac
}
bench_seq_warm() {
	local r t out
	declare -A all
	for ((r = 1; r <= RUNS; r++)); do
		for t in "${TARGETS[@]}"; do
			[[ "$t" == plain ]] && continue
			mount_target "$t"
			drop_caches
			"$BIN/benchread" seq "$(backing_of "$t")" >/dev/null
			out="$("$BIN/benchread" seq "$MNT/$t/$BIGREL")"
			log "seq (backing file cached) $t run $r: $out"
			all[$t]="${all[$t]:-} $(kv mbps "$out")"
			unmount_target "$MNT/$t"
		done
	done
	for t in "${TARGETS[@]}"; do
		# shellcheck disable=SC2086
		[[ "$t" == plain ]] || SEQW[$t]="$(median ${all[$t]})"
		# shellcheck disable=SC2086
		[[ "$t" == plain ]] || SEQW_R[$t]="$(spread ${all[$t]})"
	done
}

# ---- 2. shuffled small files --------------------------------------------------------------------
bench_shuffle() {
	local r t out
	declare -A fps mbps
	for ((r = 1; r <= RUNS; r++)); do
		for t in "${TARGETS[@]}"; do
			if [[ "$t" != plain ]]; then mount_target "$t"; fi
			drop_caches
			perf_start shuffle "$t" "$r"
			out="$("$BIN/benchread" shuffle -jobs "$JOBS" -seed "$r" "$(target_root "$t")" "$LIST")"
			perf_stop
			log "shuffle $t run $r: $out"
			fps[$t]="${fps[$t]:-} $(kv files_per_s "$out")"
			mbps[$t]="${mbps[$t]:-} $(kv mbps "$out")"
			if [[ "$t" != plain ]]; then unmount_target "$MNT/$t"; fi
		done
	done
	for t in "${TARGETS[@]}"; do
		# shellcheck disable=SC2086
		SHUF_FPS[$t]="$(median ${fps[$t]})"
		# shellcheck disable=SC2086
		SHUF_FPS_R[$t]="$(spread ${fps[$t]})"
		# shellcheck disable=SC2086
		SHUF_MBPS[$t]="$(median ${mbps[$t]})"
	done
}

# ---- 3. mount latency and memory of the many-file image -------------------------------------------
declare -A TR
bench_tree() {
	local r out k
	declare -A all
	local keys=(ready_ms list_root_ms mount_and_list_ms root_vmrss_kb root_vmhwm_kb list_subdirs_ms subdirs_vmrss_kb subdirs_vmhwm_kb)
	for ((r = 1; r <= RUNS; r++)); do
		drop_caches
		mount_encfs tree "$TREE_IMG" "$MNT/tree" --list-root "$MNT/tree" --subdirs 10
		out="$STARTED"
		log "tree run $r: $out"
		for k in "${keys[@]}"; do all[$k]="${all[$k]:-} $(kv "$k" "$out")"; done
		TR[root_entries]="$(kv root_entries "$out")"
		TR[subdir_entries]="$(kv subdir_entries "$out")"
		unmount_target "$MNT/tree"
	done
	for k in "${keys[@]}"; do
		# shellcheck disable=SC2086
		TR[$k]="$(median ${all[$k]})"
	done
}

# ---- 4. streaming from Azurite --------------------------------------------------------------------
declare -A BL
AZ_CONN=""
BLOB_URL=""
start_azurite() {
	local azbin port i
	azbin="$("$REPO/scripts/azurite.sh")"
	# Run it through a link in the work directory: scripts/cleanup.sh (run by the test script)
	# stops any Azurite whose command line names the repository's .tools.
	ln -sfn "$(readlink -f "$(dirname "$(readlink -f "$azbin")")/../../..")" "$BIN/azurite-pkg"
	port="$(free_port)"
	mkdir -p "$RUN/azurite"
	# Azurite runs on CPU 1, every thread of it: on two cores a storage server on the client's
	# core measures the competition between them, not the client (DEVELOPERS.md). The parts
	# about the client pin it to CPU 0 (taskset -a, so every thread of the daemon).
	(cd "$RUN/azurite" && exec setsid taskset -c 1 node "$BIN/azurite-pkg/dist/src/blob/main.js" --blobHost 127.0.0.1 --blobPort "$port" \
		--silent --disableTelemetry --skipApiVersionCheck --inMemoryPersistence >"$RUN/azurite.log" 2>&1) &
	AZ_PID=$!
	for ((i = 0; i < 300; i++)); do
		(: </dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
		kill -0 "$AZ_PID" 2>/dev/null || {
			log "Azurite exited: $(cat "$RUN/azurite.log")"
			return 1
		}
		sleep 0.1
	done
	local endpoint="http://127.0.0.1:$port/devstoreaccount1"
	AZ_CONN="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=$endpoint;"
	BLOB_URL="$endpoint/bench/data.img"
}

bench_blob() {
	local r out dl=() dlb=() seq=() fb=() fbl=() t0 first
	start_azurite || return 1
	export AZURE_STORAGE_CONNECTION_STRING="$AZ_CONN"
	t0=$(date +%s.%N)
	"$BIN/encfs" --log-format text upload --quiet "$IMG" "$BLOB_URL" >"$RUN/upload.log" 2>&1 || {
		log "upload failed: $(tail -3 "$RUN/upload.log")"
		return 1
	}
	BL[upload_s]="$(calc "$(date +%s.%N) - $t0" 1)"
	BL[blob_mib]="$(calc "$(stat -c %s "$IMG") / 1048576" 0)"
	log "uploaded $IMG to $BLOB_URL in ${BL[upload_s]} s"
	first="$(head -1 "$LIST")"
	local blob_gib a0 e0 azdl=() azmnt=() encmnt=() hwm=()
	blob_gib="$(calc "$(stat -c %s "$IMG") / 1073741824" 4)"
	for ((r = 1; r <= RUNS; r++)); do
		a0="$(cpu_ticks "$AZ_PID")"
		out="$(taskset -c 0 "$BIN/benchread" download -mode ranges -block $((8 << 20)) -concurrency 16 "$BLOB_URL")"
		azdl+=("$(calc "($(cpu_ticks "$AZ_PID") - $a0) / $TICK / $blob_gib" 2)")
		log "blob download (ranges) run $r: $out"
		dl+=("$(kv mbps "$out")")
		out="$(taskset -c 0 "$BIN/benchread" download -mode buffer -block $((8 << 20)) -concurrency 16 "$BLOB_URL")"
		log "blob download (DownloadBuffer) run $r: $out"
		dlb+=("$(kv mbps "$out")")
		if mount_encfs blob "$BLOB_URL" "$MNT/blob"; then
			taskset -a -pc 0 "$MPID" >/dev/null 2>&1 || true
			a0="$(cpu_ticks "$AZ_PID")" e0="$(cpu_ticks "$MPID")"
			out="$(taskset -c 0 "$BIN/benchread" seq "$MNT/blob/$BIGREL")" || out=""
			azmnt+=("$(calc "($(cpu_ticks "$AZ_PID") - $a0) / $TICK / $BIG_MIB * 1024" 2)")
			encmnt+=("$(calc "($(cpu_ticks "$MPID") - $e0) / $TICK / $BIG_MIB * 1024" 2)")
			log "blob mount seq run $r: $out"
			if [[ -n "$out" ]]; then seq+=("$(kv mbps "$out")"); fi
			# Peak resident memory of the daemon against the budget it logged at start.
			hwm+=($(awk '/^VmHWM:/ {print $2}' "/proc/$MPID/status" 2>/dev/null))
			BL[budget_mib]="$(grep -m1 -o 'msg="memory budget" bytes=[0-9]*' "$RUN/blob.log" | grep -o '[0-9]*$' | awk '{printf "%d", $1 / 1048576}')"
			unmount_target "$MNT/blob"
		else
			BL[error]="$(grep -m1 -iE 'error|encfs:' "$RUN/blob.log" | cut -c1-200)"
		fi
		if mount_encfs blob "$BLOB_URL" "$MNT/blob" --first-byte "$MNT/blob/$first"; then
			log "blob mount first byte run $r: $STARTED"
			fb+=("$(kv first_byte_ms "$STARTED")")
			unmount_target "$MNT/blob"
		fi
		# the same from the local image file, for reference
		drop_caches
		if mount_encfs local "$IMG" "$MNT/local" --first-byte "$MNT/local/$first"; then
			fbl+=("$(kv first_byte_ms "$STARTED")")
			unmount_target "$MNT/local"
		fi
	done
	BL[download]="$(median "${dl[@]}")"
	BL[download_r]="$(spread "${dl[@]}")"
	BL[download_buffer]="$(median "${dlb[@]}")"
	BL[download_buffer_r]="$(spread "${dlb[@]}")"
	BL[seq_r]="$(spread "${seq[@]}")"
	BL[first_byte_r]="$(spread "${fb[@]}")"
	BL[seq]="$(median "${seq[@]}")"
	BL[first_byte]="$(median "${fb[@]}")"
	BL[first_byte_local]="$(median "${fbl[@]}")"
	BL[az_cpu_download]="$(median "${azdl[@]}")"
	BL[az_cpu_mount]="$(median "${azmnt[@]}")"
	BL[encfs_cpu_mount]="$(median "${encmnt[@]}")"
	BL[hwm_mib]="$(median "${hwm[@]}")"
	[[ "${BL[hwm_mib]}" == n/a ]] || BL[hwm_mib]="$(calc "${BL[hwm_mib]} / 1024" 0)"
	# Azurite keeps blobs in memory, bounded: what the later parts upload must fit.
	"$BIN/benchread" rmblob "$BLOB_URL" || log "could not delete $BLOB_URL"
	unset AZURE_STORAGE_CONNECTION_STRING
}

# ---- 5. training epochs from Azurite ------------------------------------------------------------
declare -A EP
EPOCH_SETS=(small big)
epoch_file_bytes() { case "$1" in small) echo 102400 ;; big) echo 2097152 ;; esac }

prepare_epoch() { # prepare_epoch SET: the dataset, its index (path<TAB>size) and its image, in $WORK
	local set="$1" dir="$WORK/epoch-$1-${EPOCH_MIB}m" bytes count
	bytes="$(epoch_file_bytes "$set")"
	count=$((EPOCH_MIB * 1048576 / bytes))
	if [[ ! -e "$dir/.done" ]]; then
		log "generating $count files of $bytes bytes in $dir/data"
		rm -rf "$dir"
		mkdir -p "$dir"
		"$BIN/benchread" gensmall "$dir/data" "$count" "$bytes" >/dev/null
		(cd "$dir/data" && find . -type f -printf '%P\t%s\n' | sort) >"$dir/index"
		touch "$dir/.done"
	fi
	# An image of an older format (or none yet) is packed again, as for the other parts.
	if [[ "${BENCH_REPACK:-0}" == 1 ]] || ! "$BIN/encfs" inspect --key-file "$KEY" "$dir/data.img" >/dev/null 2>&1; then
		log "packing $dir/data into $dir/data.img"
		rm -f "$dir/data.img"
		"$BIN/encfs" --log-format text pack --key-file "$KEY" "$dir/data" "$dir/data.img" >"$dir/pack.log" 2>&1 || {
			log "packing the $set epoch image failed: $(tail -3 "$dir/pack.log")"
			return 1
		}
	fi
	printf '%s' "$dir"
}

metric() { # metric PORT NAME: the sum of a metric's samples on an encfs /metrics endpoint
	curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v m="$2" '$1 ~ "^"m"({|$)" {s += $2} END {printf "%.0f", s}'
}

# epoch_once SET WHAT SEED ROOT KEY INDEX: one run of scripts/epoch.py on CPU 0 over ROOT, the
# files of INDEX in the order of SEED; logs its line and prints the value of its KEY. A failed
# epoch (a mount that did not come up, read errors) fails and counts as no figure at all.
epoch_once() {
	local out
	if out="$(taskset -c 0 python3 "$REPO/scripts/epoch.py" --list "$6" --workers 8 --seed "$3" "$4")"; then
		log "epoch $1: $2: $out"
		kv "$5" "$out"
	else
		log "epoch $1: $2 failed: $out"
		return 1
	fi
}

bench_epoch() {
	local set dir url r v out port e1 e2 dl fetched hwm local_e plain_e loop_e img_bytes
	[[ -n "$AZ_PID" ]] || start_azurite || return 1
	export AZURE_STORAGE_CONNECTION_STRING="$AZ_CONN"
	for set in "${EPOCH_SETS[@]}"; do
		dir="$(prepare_epoch "$set")" || return 1
		url="${BLOB_URL%/*}/epoch-$set.img"
		img_bytes="$(stat -c %s "$dir/data.img")"
		"$BIN/encfs" --log-format text upload --quiet "$dir/data.img" "$url" >"$RUN/epoch-upload.log" 2>&1 || {
			log "upload of the $set epoch image failed: $(tail -3 "$RUN/epoch-upload.log")"
			return 1
		}
		e1=() e2=() dl=() fetched=() hwm=() local_e=() plain_e=() loop_e=()
		for ((r = 1; r <= RUNS; r++)); do
			drop_caches
			out="$(taskset -c 0 "$BIN/benchread" download -mode ranges -block $((8 << 20)) -concurrency 16 "$url")"
			log "epoch $set: plain download run $r: $out"
			dl+=("$(calc "$img_bytes / ($(kv mbps "$out") * 1e6)" 2)")

			drop_caches
			port="$("$BIN/benchread" freeport)"
			ENCFS_METRICS="127.0.0.1:$port" mount_encfs "epoch-$set" "$url" "$MNT/epoch"
			taskset -a -pc 0 "$MPID" >/dev/null 2>&1 || true
			if v="$(epoch_once "$set" "epoch 1 run $r" "$r" "$MNT/epoch" seconds "$dir/index")"; then e1+=("$v"); fi
			if v="$(epoch_once "$set" "epoch 2 run $r" "$((r + 100))" "$MNT/epoch" files_per_s "$dir/index")"; then e2+=("$v"); fi
			fetched+=("$(calc "$(metric "$port" encfs_fetch_bytes_total) / $img_bytes" 2)")
			hwm+=($(awk '/^VmHWM:/ {print $2}' "/proc/$MPID/status" 2>/dev/null))
			EP[budget_mib]="$(grep -m1 -o 'msg="memory budget" bytes=[0-9]*' "$RUN/epoch-$set.log" | grep -o '[0-9]*$' | awk '{printf "%d", $1 / 1048576}')"
			unmount_target "$MNT/epoch"

			drop_caches
			mount_encfs "epoch-$set-local" "$dir/data.img" "$MNT/epoch"
			taskset -a -pc 0 "$MPID" >/dev/null 2>&1 || true
			if v="$(epoch_once "$set" "local image run $r" "$r" "$MNT/epoch" files_per_s "$dir/index")"; then local_e+=("$v"); fi
			unmount_target "$MNT/epoch"

			# The same epoch over the plain files on the local disk: what the reader alone costs
			# on CPU 0, the floor of any filesystem there; then through the go-fuse loopback of
			# them, also on CPU 0: what FUSE adds without crypto or storage.
			drop_caches
			if v="$(epoch_once "$set" "plain files run $r" "$r" "$dir/data" seconds "$dir/index")"; then plain_e+=("$v"); fi
			drop_caches
			start_daemon loopback "$MNT/epoch" --wait-mount "$MNT/epoch" -- "$BIN/loopback" -q -ro -directmount "$MNT/epoch" "$dir/data"
			taskset -a -pc 0 "$MPID" >/dev/null 2>&1 || true
			if v="$(epoch_once "$set" "loopback run $r" "$r" "$MNT/epoch" seconds "$dir/index")"; then loop_e+=("$v"); fi
			unmount_target "$MNT/epoch"
		done
		EP[$set.files]="$(wc -l <"$dir/index")"
		EP[$set.mib]="$(calc "$img_bytes / 1048576" 0)"
		EP[$set.download_s]="$(median "${dl[@]}")"
		EP[$set.epoch1_s]="$(median "${e1[@]}")"
		EP[$set.epoch2_fps]="$(median "${e2[@]}")"
		EP[$set.local_fps]="$(median "${local_e[@]}")"
		EP[$set.plain_s]="$(median "${plain_e[@]}")"
		EP[$set.loop_s]="$(median "${loop_e[@]}")"
		EP[$set.fetched_x]="$(median "${fetched[@]}")"
		EP[$set.hwm_mib]="$(median "${hwm[@]}")"
		[[ "${EP[$set.hwm_mib]}" == n/a ]] || EP[$set.hwm_mib]="$(calc "${EP[$set.hwm_mib]} / 1024" 0)"
		"$BIN/benchread" rmblob "$url" || log "could not delete $url"
	done
	unset AZURE_STORAGE_CONNECTION_STRING
}

report_epoch() {
	local set
	# shellcheck disable=SC2016 # the backquotes are markdown
	printf '\n### Training epochs from Azurite (Azurite on CPU 1, reader and encfs on CPU 0)\n\n%s\n%s\n%s\n%s\n\n' \
		'`scripts/epoch.py --workers 8` (8 forked workers as a PyTorch DataLoader: an index queue each,' \
		'2 batches of 4 files in flight per worker, batches taken in order; every file once in shuffled' \
		'order) through a fresh `encfs mount URL` with default flags (automatic disk cache, background' \
		'fetch); epoch 2 on the same mount. The plain download: 8 MiB range GETs, 16 in flight; the local image: the same epoch on the image file mounted with `encfs mount`, also on CPU 0; plain files: the same epoch over the unencrypted dataset on the local disk, without FUSE (what the reader alone costs on CPU 0); loopback: the same through the go-fuse loopback of those files on CPU 0 (FUSE without crypto or storage).'
	printf '| dataset | files | image (MiB) | plain download (s) | plain files (s) | loopback (s) | epoch 1 (s) | epoch 1 / download | fetched / image | epoch 2 (files/s) | local image (files/s) | peak RSS / budget (MiB) |\n'
	printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
	for set in "${EPOCH_SETS[@]}"; do
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$set ($(epoch_file_bytes "$set") B files)" \
			"${EP[$set.files]:-n/a}" "${EP[$set.mib]:-n/a}" "${EP[$set.download_s]:-n/a}" "${EP[$set.plain_s]:-n/a}" "${EP[$set.loop_s]:-n/a}" "${EP[$set.epoch1_s]:-n/a}" \
			"$(ratio "${EP[$set.epoch1_s]:-n/a}" "${EP[$set.download_s]:-n/a}")" "${EP[$set.fetched_x]:-n/a}" \
			"$(fmt0 "${EP[$set.epoch2_fps]:-n/a}")" "$(fmt0 "${EP[$set.local_fps]:-n/a}")" "${EP[$set.hwm_mib]:-n/a}" "${EP[budget_mib]:-n/a}"
	done
}

goals_epoch() {
	local set
	for set in "${EPOCH_SETS[@]}"; do
		goal "$set files: epoch 1 <= 1.5x the plain download ($(ratio "${EP[$set.epoch1_s]:-n/a}" "${EP[$set.download_s]:-n/a}" 3)x)" "${EP[$set.epoch1_s]:-n/a} <= 1.5 * ${EP[$set.download_s]:-n/a}"
		goal "$set files: bytes fetched <= 1.2x the image (${EP[$set.fetched_x]:-n/a}x)" "${EP[$set.fetched_x]:-n/a} <= 1.2"
		goal "$set files: epoch 2 >= 0.8x the local image ($(ratio "${EP[$set.epoch2_fps]:-n/a}" "${EP[$set.local_fps]:-n/a}" 3)x)" "${EP[$set.epoch2_fps]:-n/a} >= 0.8 * ${EP[$set.local_fps]:-n/a}"
		goal "$set files: peak RSS within the memory budget (${EP[$set.hwm_mib]:-n/a} of ${EP[budget_mib]:-n/a} MiB)" "${EP[$set.hwm_mib]:-n/a} <= ${EP[budget_mib]:-n/a}"
	done
}

# ---- 6. read-write volumes ----------------------------------------------------------------------
declare -A VOL
IFS=, read -r -a VOL_TARGETS <<<"${BENCH_VOL_TARGETS:-volume,volume-prealloc,plainvol,gocryptfs,ext4,volume-azurite}"
VOL_LOOP="" # the loop device of the plain ext4 target, detached by cleanup if still attached

gosrc_tar() { # Go's source tree as one tar file, made once
	local tarball="$WORK/gosrc.tar"
	if [[ ! -s "$tarball" ]]; then
		tar -cf "$tarball.tmp" -C "$(go env GOROOT)" src && mv "$tarball.tmp" "$tarball"
	fi
	printf '%s' "$tarball"
}

mount_volume_target() { # mount_volume_target TARGET: a fresh, empty filesystem at $MNT/vol-TARGET
	local t="$1" mnt="$MNT/vol-$1" img="$D/vol-$1.img" target create_flags=()
	MPID=""
	rm -rf "$img" "$D/vol-gocryptfs"
	case "$t" in
	volume | volume-prealloc | volume-azurite)
		target="$img"
		[[ "$t" == volume-prealloc ]] && create_flags=(--preallocate)
		if [[ "$t" == volume-azurite ]]; then
			[[ -n "$AZ_PID" ]] || start_azurite || return 1
			export AZURE_STORAGE_CONNECTION_STRING="$AZ_CONN"
			# A deadline: after a target's random page writes, Azurite (in memory) once spent 14
			# minutes on the next Create Container; the run goes on without this target then.
			timeout 120 "$BIN/benchread" container "${BLOB_URL%/*}" || {
				log "volume $t: Azurite did not create the container within 120 s"
				return 1
			}
			target="${BLOB_URL%/*}/vol-$(date +%s%N).img"
			VOL_BLOB="$target"
		fi
		timeout 300 "$BIN/encfs" --log-format text volume create --key-file "$KEY" --size "${VOL_MIB}M" "${create_flags[@]}" "$target" >"$RUN/vol-$t-create.log" 2>&1 || {
			log "volume create failed: $(tail -3 "$RUN/vol-$t-create.log")"
			return 1
		}
		start_daemon "vol-$t" "$mnt" --ready-file "$RUN/vol-$t.ready" -- \
			"$BIN/encfs" --log-format text volume mount --key-file "$KEY" --ready-file "$RUN/vol-$t.ready" "$target" "$mnt"
		;;
	plainvol)
		start_daemon "vol-$t" "$mnt" --ready-file "$RUN/vol-$t.ready" -- \
			"$BIN/benchread" plainvol --create $((VOL_MIB << 20)) --ready-file "$RUN/vol-$t.ready" "$img" "$mnt"
		;;
	gocryptfs)
		mkdir -p "$D/vol-gocryptfs"
		gocryptfs -init -extpass "$GOCRYPTFS_PW" -quiet "$D/vol-gocryptfs" >/dev/null
		start_daemon "vol-$t" "$mnt" --wait-mount "$mnt" -- gocryptfs -fg -extpass "$GOCRYPTFS_PW" -quiet "$D/vol-gocryptfs" "$mnt"
		;;
	ext4)
		mkdir -p "$mnt"
		truncate -s "${VOL_MIB}M" "$img"
		VOL_LOOP="$(losetup --find --show --direct-io=on --sector-size 4096 "$img")"
		mkfs.ext4 -q -F -b 4096 -E nodiscard "$VOL_LOOP"
		MOUNTS+=("$mnt")
		mount "$VOL_LOOP" "$mnt"
		;;
	esac
}

unmount_volume_target() { # unmount_volume_target TARGET (the daemons unmount, detach and flush on SIGTERM)
	local t="$1" mnt="$MNT/vol-$1"
	if [[ "$t" == ext4 ]]; then
		unmount_dir "$mnt"
		losetup -d "$VOL_LOOP"
		VOL_LOOP=""
	else
		unmount_target "$mnt"
	fi
	rm -rf "$D/vol-$t.img" "$D/vol-gocryptfs"
	if [[ -n "${VOL_BLOB:-}" ]]; then
		"$BIN/benchread" rmblob "$VOL_BLOB" || log "could not delete $VOL_BLOB"
		VOL_BLOB=""
	fi
	unset AZURE_STORAGE_CONNECTION_STRING
}

fio_result() { # fio_result bw|iops FIO-ARGS...: runs one fio job, prints its MB/s or IOPS
	local key="$1" out
	shift
	if ! out="$(fio --output-format=json "$@" 2>"$RUN/fio.err")"; then
		log "fio $* failed: $(tail -3 "$RUN/fio.err")"
		printf 'n/a'
		return
	fi
	# Notes fio prints before its JSON are skipped.
	sed -n '/^{/,$p' <<<"$out" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
op = "write" if j["write"]["io_bytes"] else "read"
print("%.1f" % (j[op]["bw_bytes"] / 1e6 if sys.argv[1] == "bw" else j[op]["iops"]))' "$key"
}

bench_volume() {
	local r t mnt c0 t0 tarball
	declare -A seqw randw randr untar rmrf cpu hwm
	tarball="$(gosrc_tar)"
	for ((r = 1; r <= RUNS; r++)); do
		for t in "${VOL_TARGETS[@]}"; do # round robin, so load changes hit every target alike
			mnt="$MNT/vol-$t"
			if ! mount_volume_target "$t"; then
				log "volume $t: mount failed; skipped"
				[[ -n "$MPID" ]] && stop_pid "$MPID"
				continue
			fi
			c0="$(cpu_ticks "${MPID:-0}")"
			seqw[$t]="${seqw[$t]:-} $(fio_result bw --name=seqwrite --filename="$mnt/seq" --rw=write --bs=1M \
				--size="${VOL_SEQ_MIB}M" --end_fsync=1)"
			rm -f "$mnt/seq"
			randw[$t]="${randw[$t]:-} $(fio_result iops --name=randwrite --filename="$mnt/rand" --rw=randwrite --bs=4k \
				--size="${VOL_RAND_MIB}M" --ioengine=libaio --iodepth=16 --direct=1 --time_based --runtime="$VOL_RUNTIME" --end_fsync=1)"
			drop_caches
			randr[$t]="${randr[$t]:-} $(fio_result iops --name=randread --filename="$mnt/rand" --rw=randread --bs=4k \
				--size="${VOL_RAND_MIB}M" --ioengine=libaio --iodepth=16 --direct=1 --time_based --runtime="$VOL_RUNTIME")"
			rm -f "$mnt/rand"
			sync
			# A metadata step that fails gives no figure (n/a), not the time it took to fail.
			t0=$(date +%s.%N)
			if mkdir "$mnt/tree" && tar -xf "$tarball" -C "$mnt/tree" && sync; then
				untar[$t]="${untar[$t]:-} $(calc "$(date +%s.%N) - $t0" 2)"
			fi
			t0=$(date +%s.%N)
			if rm -rf "$mnt/tree" && sync; then
				rmrf[$t]="${rmrf[$t]:-} $(calc "$(date +%s.%N) - $t0" 2)"
			fi
			if [[ -n "$MPID" ]]; then
				cpu[$t]="${cpu[$t]:-} $(calc "($(cpu_ticks "$MPID") - $c0) / $TICK" 1)"
				hwm[$t]="${hwm[$t]:-} $(awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$MPID/status")"
			fi
			log "volume $t run $r: seq write ${seqw[$t]##* } MB/s, rand write ${randw[$t]##* } IOPS," \
				"rand read ${randr[$t]##* } IOPS, untar ${untar[$t]##* } s, rm -rf ${rmrf[$t]##* } s"
			unmount_volume_target "$t"
		done
	done
	local k
	for t in "${VOL_TARGETS[@]}"; do
		for k in seqw randw randr untar rmrf cpu hwm; do
			local -n values="$k"
			# shellcheck disable=SC2086
			VOL[$t.$k]="$(median ${values[$t]:-})"
			unset -n values
		done
		if [[ "${VOL[$t.untar]}" != n/a && "${VOL[$t.rmrf]}" != n/a ]]; then
			VOL[$t.meta]="$(calc "${VOL[$t.untar]} + ${VOL[$t.rmrf]}" 2)"
		fi
	done
}

vol_what() {
	# shellcheck disable=SC2016 # the backquotes are markdown
	case "$1" in
	volume) printf '`encfs volume mount` of a local file (sparse, the default)' ;;
	volume-prealloc) printf 'the same, created with `--preallocate` (the store written whole at creation)' ;;
	plainvol) printf 'the same ext4, loop and FUSE file without crypto (`benchread plainvol`)' ;;
	gocryptfs) printf 'gocryptfs over a local directory' ;;
	ext4) printf 'ext4 on a loop device (direct I/O) over a local file, no FUSE' ;;
	volume-azurite) printf '`encfs volume mount` of a page blob in Azurite' ;;
	*) printf '?' ;;
	esac
}

report_volume() {
	local t v=volume
	cat <<EOF

### Read-write volumes

Each target is a fresh, empty filesystem of $VOL_MIB MiB. Sequential write: \`fio --rw=write --bs=1M
--size=${VOL_SEQ_MIB}M --end_fsync=1\` (MB/s). Random: \`fio --bs=4k --size=${VOL_RAND_MIB}M --ioengine=libaio
--iodepth=16 --direct=1 --time_based --runtime=$VOL_RUNTIME\`, writes (with end_fsync), then reads of the same
file after dropping the page cache (IOPS). Metadata: untar of Go's source tree ($(calc "$(stat -c %s "$WORK/gosrc.tar" 2>/dev/null || echo 0) / 1048576" 0) MiB tar)
then \`sync\`, and \`rm -rf\` of it then \`sync\` (seconds). Daemon CPU: user + system seconds of the
FUSE daemon over all four workloads; peak RSS: its VmHWM at the end.

| target | what | seq write MB/s | rand 4K write IOPS | rand 4K read IOPS | untar s | rm -rf s | daemon CPU s | peak RSS MiB |
|---|---|---:|---:|---:|---:|---:|---:|---:|
EOF
	for t in "${VOL_TARGETS[@]}"; do
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$(vol_what "$t")" "$(fmt0 "${VOL[$t.seqw]:-n/a}")" \
			"$(fmt0 "${VOL[$t.randw]:-n/a}")" "$(fmt0 "${VOL[$t.randr]:-n/a}")" "${VOL[$t.untar]:-n/a}" "${VOL[$t.rmrf]:-n/a}" \
			"${VOL[$t.cpu]:-n/a}" "${VOL[$t.hwm]:-n/a}"
	done
	cat <<EOF

| goal (issue 16) | result |
|---|---|
EOF
	goal "sequential write >= 0.75x the no-crypto stack ($(ratio "${VOL[$v.seqw]:-n/a}" "${VOL[plainvol.seqw]:-n/a}" 3)x)" "${VOL[$v.seqw]:-n/a} >= 0.75 * ${VOL[plainvol.seqw]:-n/a}"
	goal "random 4K write IOPS >= 0.75x the no-crypto stack ($(ratio "${VOL[$v.randw]:-n/a}" "${VOL[plainvol.randw]:-n/a}" 3)x)" "${VOL[$v.randw]:-n/a} >= 0.75 * ${VOL[plainvol.randw]:-n/a}"
	goal "the same with a preallocated store ($(ratio "${VOL[volume-prealloc.randw]:-n/a}" "${VOL[plainvol.randw]:-n/a}" 3)x)" "${VOL[volume-prealloc.randw]:-n/a} >= 0.75 * ${VOL[plainvol.randw]:-n/a}"
	goal "sequential write >= 1.2x gocryptfs ($(ratio "${VOL[$v.seqw]:-n/a}" "${VOL[gocryptfs.seqw]:-n/a}" 3)x)" "${VOL[$v.seqw]:-n/a} >= 1.2 * ${VOL[gocryptfs.seqw]:-n/a}"
	goal "random 4K write IOPS >= 1.2x gocryptfs ($(ratio "${VOL[$v.randw]:-n/a}" "${VOL[gocryptfs.randw]:-n/a}" 3)x)" "${VOL[$v.randw]:-n/a} >= 1.2 * ${VOL[gocryptfs.randw]:-n/a}"
	goal "metadata workload >= 1.2x gocryptfs (untar + rm -rf: ${VOL[gocryptfs.meta]:-n/a} s against ${VOL[$v.meta]:-n/a} s)" "${VOL[gocryptfs.meta]:-n/a} >= 1.2 * ${VOL[$v.meta]:-n/a}"
}

# ---- report -------------------------------------------------------------------------------------
ratio() { # ratio A B [DECIMALS]: A/B with two decimals (or DECIMALS), or n/a
	if [[ "$1" == n/a || "$2" == n/a || -z "$1" || -z "$2" ]]; then printf 'n/a'; else calc "$1 / $2" "${3:-2}"; fi
}
goal() { # goal "text" CONDITION-EXPR (awk): prints a table row
	local text="$1" expr="$2" verdict
	if [[ "$expr" == *n/a* ]]; then
		verdict="not measured"
	elif awk "BEGIN { exit !($expr) }"; then
		verdict="**met**"
	else
		verdict="**missed**"
	fi
	printf '| %s | %s |\n' "$text" "$verdict"
}

# skipped_note: the sentence of the report that names the parts a BENCH_SKIP run left out.
skipped_note() {
	[[ -n "${SKIP//,/}" ]] || return 0
	local parts="${SKIP#,}"
	printf ' Parts skipped (BENCH_SKIP): %s; their tables say n/a and their charts are empty.' "${parts%,}"
}

report() {
	local t
	local cpu kernel gover commit
	cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	kernel="$(uname -r)"
	gover="$(go version | awk '{print $3}')"
	commit="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	[[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ]] && commit="$commit + uncommitted changes"
	cat <<EOF
\`scripts/bench.sh\` (mode: $MODE), run on $START_DATE to $(date -u '+%H:%M:%S UTC'), on \`$cpu\`
($(nproc) vCPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM), kernel $kernel, $gover, encfs at $commit,
$(gocryptfs -version 2>/dev/null | head -1 || echo "gocryptfs not installed"), Azurite $(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$BIN/azurite-pkg/package.json" 2>/dev/null | head -1).
Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg); the host
stole $(steal_pct "$CPU_START")% of this VM's CPU time during the run (steal in /proc/stat). The machine
is shared, so expect noise; each figure is the median of $RUNS runs, each run cold: the page cache is
dropped (\`sync; echo 3 > /proc/sys/vm/drop_caches\`) and every FUSE filesystem is mounted afresh
before it. MB/s is 10^6 bytes per second.$(skipped_note)

Data (in \`$D\`): one file of $BIG_MIB MiB and $SMALL_COUNT files of $SMALL_BYTES bytes (100 per
directory), random bytes; the encfs image packs that directory, gocryptfs holds a copy of it
(\`gocryptfs -init -extpass '$GOCRYPTFS_PW' -quiet\`, filled through its mount), the loopback mounts
it directly. The many-file image holds $TREE_DIRS directories of $TREE_FILES files of $((TREE_BYTES / 2))-$((TREE_BYTES * 3 / 2)) bytes.

| configuration | command |
|---|---|
| encfs | \`encfs mount --key-file KEY --ready-file F IMAGE MNT\` (defaults: --cache-size 256M, DirectMount, read_ahead_kb set by the mount) |
| gocryptfs | \`gocryptfs -fg -extpass '$GOCRYPTFS_PW' -quiet CIPHERDIR MNT\` (its defaults) |
| loopback | \`loopback -q -ro -directmount MNT PLAINDIR\` (go-fuse v2.12.1 \`example/loopback\`, no crypto, its defaults) |
| plain | the file on the local disk (virtio, ext4), read directly |
| sequential | \`benchread seq FILE\`: read(2) from start to end with a 1 MiB buffer |
| shuffled | \`benchread shuffle -jobs $JOBS -seed RUN ROOT LIST\`: $JOBS readers take the next file of a shuffled list, open it and read it whole with a 1 MiB buffer |
| mount | \`benchread start --ready-file F --list-root MNT --subdirs 10 -- encfs mount ...\`: time from exec to the ready file, then \`ReadDir\` of the root, then \`ReadDir\` and \`Lstat\` of every entry of 10 subdirectories; VmRSS/VmHWM of the encfs process from /proc after each |
| blob download | Azurite on CPU 1, the client on CPU 0 (\`taskset\`): \`benchread download -mode ranges -block 8388608 -concurrency 16 URL\`: Get Blob Properties, then 16 goroutines GET the next 8 MiB range (If-Match the ETag) into a buffer of their own, the whole blob; \`-mode buffer\`: azblob \`DownloadBuffer\` (same block size and concurrency) into one buffer the size of the blob |
| blob mount | \`encfs mount --key-file KEY URL MNT\` with \`AZURE_STORAGE_CONNECTION_STRING\`, both on CPU 0, then \`benchread seq\`; first byte (not pinned): \`benchread start --first-byte MNT/FILE\` |

### Sequential read, one $BIG_MIB MiB file

| target | cold: MB/s | (range) | encfs / target | daemon CPU s/GiB | page cache growth MiB | backing file cached: MB/s | (range) | encfs / target | read_ahead_kb |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
	for t in "${TARGETS[@]}"; do
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$(fmt0 "${SEQ[$t]:-n/a}")" "${SEQ_R[$t]:-n/a}" \
			"$(ratio "${SEQ[encfs]:-n/a}" "${SEQ[$t]:-n/a}")" "${SEQ_CPU[$t]:-n/a}" "${SEQ_CACHE[$t]:-n/a}" \
			"$(fmt0 "${SEQW[$t]:-n/a}")" "${SEQW_R[$t]:-n/a}" "$(ratio "${SEQW[encfs]:-n/a}" "${SEQW[$t]:-n/a}")" "${RA[$t]:-n/a}"
	done
	cat <<EOF

"Cold" is the goals' measurement: page cache dropped, so the disk is read too. "Backing file
cached": the page cache is dropped, the file under the FUSE filesystem (the encfs image, the
gocryptfs ciphertext file, the plain file for the loopback) is read once into it, and then the
FUSE filesystem, mounted afresh, is read: the cost of the filesystem itself without the disk
(encfs reads a local image with O_DIRECT, so a cached image does not help it; its figure there
is a second cold read). "Daemon CPU": user + system time of the FUSE daemon during the cold read, per GiB read (the
kernel's copy into the mount's page cache is charged to it). "Page cache growth": how much
/proc/meminfo's Cached grew during the cold read: the file's own pages plus whatever the
daemon caches underneath (the backing file, for a filesystem that reads it through the cache).
EOF
	cat <<EOF

encfs's average read request, from its metrics (read_bytes_total / read_requests_total): ${REQKB[encfs]:-n/a} KiB.

### Shuffled reads, $JOBS readers, $SMALL_COUNT files of $((SMALL_BYTES / 1024)) KiB

| target | files/s | (range) | MB/s | encfs / target |
|---|---:|---:|---:|---:|
EOF
	for t in "${TARGETS[@]}"; do
		printf '| %s | %s | %s | %s | %s |\n' "$t" "$(fmt0 "${SHUF_FPS[$t]:-n/a}")" "${SHUF_FPS_R[$t]:-n/a}" "$(fmt0 "${SHUF_MBPS[$t]:-n/a}")" \
			"$(ratio "${SHUF_FPS[encfs]:-n/a}" "${SHUF_FPS[$t]:-n/a}")"
	done
	local rss_root="n/a" hwm_root="n/a" rss_sub="n/a" hwm_sub="n/a"
	[[ "${TR[root_vmrss_kb]:-n/a}" != n/a ]] && rss_root="$(calc "${TR[root_vmrss_kb]} / 1024" 1)"
	[[ "${TR[root_vmhwm_kb]:-n/a}" != n/a ]] && hwm_root="$(calc "${TR[root_vmhwm_kb]} / 1024" 1)"
	[[ "${TR[subdirs_vmrss_kb]:-n/a}" != n/a ]] && rss_sub="$(calc "${TR[subdirs_vmrss_kb]} / 1024" 1)"
	[[ "${TR[subdirs_vmhwm_kb]:-n/a}" != n/a ]] && hwm_sub="$(calc "${TR[subdirs_vmhwm_kb]} / 1024" 1)"
	cat <<EOF

### Mount latency and memory, image of $((TREE_DIRS * TREE_FILES)) files

Image $(calc "$(stat -c %s "$TREE_IMG" 2>/dev/null || echo 0) / 1048576" 0) MiB, packed in $(cat "$D/tree-pack.secs" 2>/dev/null || echo "n/a (cached)") s.

| step | time (ms) | VmRSS (MiB) | VmHWM (MiB) |
|---|---:|---:|---:|
| exec to ready file | ${TR[ready_ms]:-n/a} | | |
| list the root (${TR[root_entries]:-n/a} entries) | ${TR[list_root_ms]:-n/a} | $rss_root | $hwm_root |
| **mounted and root listed** | **${TR[mount_and_list_ms]:-n/a}** | | |
| then list + lstat 10 subdirectories (${TR[subdir_entries]:-n/a} entries) | ${TR[list_subdirs_ms]:-n/a} | $rss_sub | $hwm_sub |

### Streaming from Azurite (in memory, 127.0.0.1, on CPU 1; the client on CPU 0), blob of ${BL[blob_mib]:-n/a} MiB

| measurement | median | (range) |
|---|---:|---:|
| \`encfs upload\` of the image (once) | ${BL[upload_s]:-n/a} s | |
| plain parallel download: 8 MiB range GETs, 16 in flight, into reused buffers | $(fmt0 "${BL[download]:-n/a}") MB/s | ${BL[download_r]:-n/a} |
| the same with azblob \`DownloadBuffer\` into one blob-sized buffer | $(fmt0 "${BL[download_buffer]:-n/a}") MB/s | ${BL[download_buffer_r]:-n/a} |
| sequential read of the $BIG_MIB MiB file through \`encfs mount URL\` | $(fmt0 "${BL[seq]:-n/a}") MB/s | ${BL[seq_r]:-n/a} |
| mount / plain download | $(ratio "${BL[seq]:-n/a}" "${BL[download]:-n/a}") | |
| Azurite CPU per GiB served: plain download / mount | ${BL[az_cpu_download]:-n/a} / ${BL[az_cpu_mount]:-n/a} s | |
| encfs CPU per GiB read through the mount | ${BL[encfs_cpu_mount]:-n/a} s | |
| encfs peak RSS (VmHWM) after the sequential read / its memory budget | ${BL[hwm_mib]:-n/a} / ${BL[budget_mib]:-n/a} MiB | |
| exec of \`encfs mount URL\` to the first byte of a file | ${BL[first_byte]:-n/a} ms | ${BL[first_byte_r]:-n/a} |
| the same from the local image file | ${BL[first_byte_local]:-n/a} ms | |
EOF
	# shellcheck disable=SC2016 # the backquotes are markdown
	if [[ -n "${BL[error]:-}" ]]; then printf '\n`encfs mount URL` failed: `%s`\n' "${BL[error]}"; fi
	skip epoch || report_epoch
	skip volume || report_volume
	cat <<EOF

### Goals (issues 4, 5, 12 and 14)

| goal | result |
|---|---|
EOF
	local s_e="${SEQ[encfs]:-n/a}" s_g="${SEQ[gocryptfs]:-n/a}" s_l="${SEQ[loopback]:-n/a}"
	local f_e="${SHUF_FPS[encfs]:-n/a}" f_g="${SHUF_FPS[gocryptfs]:-n/a}"
	goal "sequential >= 1.2x gocryptfs ($(ratio "$s_e" "$s_g" 3)x)" "$s_e >= 1.2 * $s_g"
	goal "sequential >= 75% of loopback ($(ratio "$s_e" "$s_l" 3)x)" "$s_e >= 0.75 * $s_l"
	goal "shuffled small files >= 1.2x gocryptfs ($(ratio "$f_e" "$f_g" 3)x)" "$f_e >= 1.2 * $f_g"
	goal "$((TREE_DIRS * TREE_FILES))-file image mounted and root listed < 1 s (${TR[mount_and_list_ms]:-n/a} ms)" "${TR[mount_and_list_ms]:-n/a} < 1000"
	goal "... with < 100 MB resident (VmHWM ${TR[root_vmhwm_kb]:-n/a} KiB)" "${TR[root_vmhwm_kb]:-n/a} * 1024 < 100e6"
	goal "streaming >= 80% of the plain parallel download ($(ratio "${BL[seq]:-n/a}" "${BL[download]:-n/a}" 3)x)" "${BL[seq]:-n/a} >= 0.8 * ${BL[download]:-n/a}"
	goal "mount to first byte < 1 s against Azurite (${BL[first_byte]:-n/a} ms)" "${BL[first_byte]:-n/a} < 1000"
	goal "streaming mount's peak RSS within its memory budget (${BL[hwm_mib]:-n/a} of ${BL[budget_mib]:-n/a} MiB)" "${BL[hwm_mib]:-n/a} <= ${BL[budget_mib]:-n/a}"
	skip epoch || goals_epoch
}

checkpoint() { # checkpoint PART: the report of the parts done so far, so that a run cut short keeps them
	{
		printf '**Partial report**, written after part %s: the parts not run yet show n/a. A complete run\n' "$1"
		printf 'replaces it.\n\n'
		report
	} >"$D/report.md"
	log "partial report after part $1 in $D/report.md"
}

write_dated() { # write_dated REPORT: the dated report with its charts into $OUT
	local out="$OUT" charts
	mkdir -p "$out"
	charts="$("$BIN/benchchart" -out "$out" -prefix "$STAMP" "$1")" || {
		log "benchchart failed; the report is in $1"
		return 1
	}
	{
		printf '# Benchmark run of %s\n\n' "$START_HUMAN"
		printf '%s\n\n' "$charts"
		cat "$1"
	} >"$out/$STAMP.md"
	log "wrote $out/$STAMP.md and its charts"
}

# ---- main ------------------------------------------------------------------------------------------
START_EPOCH="$(date +%s)"
START_DATE="$(date -u -d "@$START_EPOCH" '+%Y-%m-%d from %H:%M:%S UTC')"
START_HUMAN="$(date -u -d "@$START_EPOCH" '+%Y-%m-%d %H:%M UTC')"
STAMP="$(date -u -d "@$START_EPOCH" '+%Y-%m-%d-%H%M')"
if [[ "$QUICK" == 1 || -n "${BENCH_SKIP:-}" ]]; then OUT="${BENCH_OUT:-$D}"; else OUT="${BENCH_OUT:-$REPO/docs/bench}"; fi
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
CPU_START="$(head -1 /proc/stat)"
mkdir -p "$WORK" "$BIN" "$D" "$RUN" "$MNT"
log "work directory $D (mode $MODE), load average $LOAD_START"
install_tools
prepare_data
if [[ "$PREPARE" == 1 ]]; then
	log "data ready in $D"
	exit 0
fi
skip seq || { bench_seq && checkpoint seq; }
skip seqwarm || { bench_seq_warm && checkpoint seqwarm; }
skip shuffle || { bench_shuffle && checkpoint shuffle; }
skip tree || { bench_tree && checkpoint tree; }
if ! skip blob; then bench_blob || log "blob streaming benchmark failed; see $RUN"; checkpoint blob; fi
if ! skip epoch; then bench_epoch || log "training epoch benchmark failed; see $RUN"; checkpoint epoch; fi
if ! skip volume; then bench_volume || log "volume benchmark failed; see $RUN"; fi
report >"$D/report.md"
cat "$D/report.md"
write_dated "$D/report.md"
exit 0
