#!/bin/sh
# wait-for-mount.sh: block until the encfs sidecar's mount is ready, then run a command.
#
#   wait-for-mount.sh [-t SECONDS] [-r READY_FILE] MOUNT_POINT [COMMAND [ARG ...]]
#
# Ready means, in this order of preference:
#   * -r READY_FILE given: that file exists (the sidecar's `mount --ready-file PATH`, on the
#     shared volume);
#   * otherwise MOUNT_POINT is the symlink that `publish_symlink: true` (or
#     `mount --publish-symlink`) creates once the FUSE mount is live, and it resolves to a
#     readable directory; or MOUNT_POINT is itself a mount (a directory on another device than
#     its parent), for a sidecar that mounts in place.
# Exits 1 with a message after -t SECONDS (default 300) if the mount never becomes ready: the
# sidecar's log says why (attestation, key release, blob access...; docs/OPERATIONS.md lists
# every message). Plain POSIX sh (busybox, alpine, debian): copy it into any consumer image that
# has /bin/sh and make it the entrypoint, or inline it as the examples do.
set -eu

timeout=300
ready_file=
while getopts t:r: opt; do
	case "$opt" in
	t) timeout=$OPTARG ;;
	r) ready_file=$OPTARG ;;
	*) echo "usage: $0 [-t SECONDS] [-r READY_FILE] MOUNT_POINT [COMMAND [ARG ...]]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ]; then
	echo "usage: $0 [-t SECONDS] [-r READY_FILE] MOUNT_POINT [COMMAND [ARG ...]]" >&2
	exit 2
fi
mp=$1
shift

is_ready() {
	if [ -n "$ready_file" ]; then
		[ -e "$ready_file" ]
		return
	fi
	if [ -L "$mp" ]; then
		# Published: the link appears only after the mount is live.
		[ -d "$mp/" ] && ls "$mp/" >/dev/null 2>&1
		return
	fi
	[ -d "$mp" ] || return 1
	# Mounted in place: the directory is on another device than its parent.
	dev=$(stat -c %d "$mp" 2>/dev/null) || return 1
	parent=$(stat -c %d "$mp/.." 2>/dev/null) || return 1
	[ "$dev" != "$parent" ]
}

start=$(date +%s)
while ! is_ready; do
	now=$(date +%s)
	if [ $((now - start)) -ge "$timeout" ]; then
		if [ -n "$ready_file" ]; then
			echo "wait-for-mount: $ready_file did not appear within ${timeout}s; see the encfs sidecar's log" >&2
		else
			echo "wait-for-mount: $mp is not an encfs mount after ${timeout}s; see the encfs sidecar's log" >&2
		fi
		exit 1
	fi
	sleep 1
done
echo "wait-for-mount: $mp is ready after $(($(date +%s) - start))s" >&2

if [ $# -gt 0 ]; then
	exec "$@"
fi
