#!/usr/bin/env bash
# Cleans up after an interrupted test or demo run: lazily unmounts every encfs FUSE mount whose
# daemon is gone (the mount answers "Transport endpoint is not connected"). Live mounts, such as a
# running demo or sidecar, are left alone. Test mounts carry their own names and their tests
# clean them (fs/fstest.CleanStale). Safe to run at any time.
set -uo pipefail

# /proc/mounts: source mountpoint type ...; encfs mounts have type fuse.encfs or fuse and a source
# that starts with "encfs".
while read -r src mnt type _; do
	case "$type" in fuse.encfs | fuse) ;; *) continue ;; esac
	[[ "$src" == encfs* ]] || continue
	mnt=$(printf '%b' "$mnt") # /proc/mounts escapes spaces as \040
	# Probe a name that cannot be cached: a dead daemon makes any lookup fail with ENOTCONN.
	if err=$(stat "$mnt/.encfs-cleanup-probe-$$" 2>&1) || [[ "$err" != *"not connected"* ]]; then
		continue
	fi
	echo "cleanup: unmounting stale $mnt (its encfs process is gone)" >&2
	umount -l "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
done </proc/mounts
exit 0
