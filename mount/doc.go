// Package mount puts a go-fuse filesystem at a path the way the sidecar needs it: read-only,
// with 1 MiB requests and a raised read_ahead_kb, mounted directly with mount(2) when running
// as root (fusermount3 otherwise), after clearing a stale mount that a crashed run left at the
// same path. Optionally it publishes the mount the way the reference sidecar does: mount at a
// hidden directory beside the target, then atomically make the target a symlink to it, so
// consumers see the path only once it is ready. Unmount retries while the mount is busy and
// detaches it lazily as a last resort, so a stopping sidecar never leaves a mount behind.
package mount
