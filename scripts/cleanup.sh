#!/usr/bin/env bash
# Cleans up after an interrupted test or demo run: lazily unmounts every encfs FUSE mount whose
# daemon is gone (the mount answers "Transport endpoint is not connected"), and, for a volume whose
# process is gone, first the filesystem mounted on its loop device and the loop device itself.
# Live mounts, such as a running demo or sidecar, are left alone. Test mounts carry their own names
# and their tests clean them (fs/fstest.CleanStale). Safe to run at any time.
set -uo pipefail

dead() { # dead DIR: DIR is a FUSE mount whose daemon has exited
	local err
	! err=$(stat "$1/.encfs-cleanup-probe-$$" 2>&1) && [[ "$err" == *"not connected"* ]]
}

# A volume is served as the file <dir>/device of a FUSE mount with source encfs-blockdev, and a
# loop device is attached to that file (blockdev). Unmount what is mounted on such a loop device
# and detach it before the FUSE mount goes.
for bf in /sys/block/loop*/loop/backing_file; do
	[[ -r "$bf" ]] || continue
	file=$(<"$bf")
	file=${file% (deleted)}
	dir=${file%/device}
	[[ "$dir" != "$file" && "$(basename "$dir")" == encfs-blockdev-* ]] || continue
	awk -v d="$dir" '$2 == d && $1 == "encfs-blockdev" {found=1} END {exit !found}' /proc/mounts || continue
	dead "$dir" || continue
	loop=/dev/$(basename "$(dirname "$(dirname "$bf")")")
	while read -r src mnt _; do
		[[ "$src" == "$loop" ]] || continue
		mnt=$(printf '%b' "$mnt")
		echo "cleanup: unmounting $mnt (on $loop, whose encfs process is gone)" >&2
		umount -l "$mnt" 2>/dev/null || true
	done </proc/mounts
	echo "cleanup: detaching $loop (its encfs process is gone)" >&2
	losetup -d "$loop" 2>/dev/null || true
done

# /proc/mounts: source mountpoint type ...; encfs mounts have type fuse.encfs or fuse and a source
# that starts with "encfs".
while read -r src mnt type _; do
	case "$type" in fuse.encfs | fuse) ;; *) continue ;; esac
	[[ "$src" == encfs* ]] || continue
	mnt=$(printf '%b' "$mnt") # /proc/mounts escapes spaces as \040
	# Probe a name that cannot be cached: a dead daemon makes any lookup fail with ENOTCONN.
	dead "$mnt" || continue
	echo "cleanup: unmounting stale $mnt (its encfs process is gone)" >&2
	umount -l "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
	[[ "$src" == encfs-blockdev ]] && rmdir "$mnt" 2>/dev/null # blockdev's private directory
done </proc/mounts
exit 0
