#!/usr/bin/env bash
# Cleans up after an interrupted test or demo run: lazily unmounts every encfs FUSE mount that
# lives under a temporary directory, and stops Azurite servers started from this repository's
# .tools. Safe to run at any time; it touches nothing else.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# /proc/mounts: source mountpoint type ... ; encfs mounts have source "encfs" and type fuse.encfs.
while read -r src mnt type _; do
	case "$type" in fuse.encfs | fuse) ;; *) continue ;; esac
	[[ "$src" == encfs* ]] || continue
	mnt=$(printf '%b' "$mnt") # /proc/mounts escapes spaces as \040
	case "$mnt" in /tmp/* | "${TMPDIR:-/tmp}"/*)
		echo "cleanup: unmounting stale $mnt" >&2
		umount -l "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
		;;
	esac
done </proc/mounts

for pid in $(pgrep -f "$repo/.tools/azurite" 2>/dev/null); do
	echo "cleanup: stopping stale Azurite (pid $pid)" >&2
	kill "$pid" 2>/dev/null || true
done
exit 0
