package blockdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
)

// GrowFS grows the filesystem on dev to the whole device (after the device itself has grown).
// ext4 grows offline: e2fsck -f -p, then resize2fs on the loop device (online growth would need
// CAP_SYS_RESOURCE, which containers often lack). xfs grows only online: it is mounted on a
// private directory for xfs_growfs.
func GrowFS(ctx context.Context, dev Device) error {
	fs, err := Detect(ctx, dev)
	if err != nil {
		return err
	}
	if fs == "xfs" {
		return growXFS(ctx, dev)
	}
	a, err := Attach(ctx, dev, false, nil)
	if err != nil {
		return err
	}
	growErr := run(ctx, "e2fsck", "-f", "-p", a.Loop)
	if growErr == nil {
		growErr = run(ctx, "resize2fs", a.Loop)
	}
	return errors.Join(growErr, a.Detach(ctx))
}

func growXFS(ctx context.Context, dev Device) error {
	dir, err := os.MkdirTemp("", "encfs-grow-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	m, err := Mount(ctx, dev, dir, Options{FS: "xfs", Log: slog.Default()})
	if err != nil {
		return err
	}
	return errors.Join(run(ctx, "xfs_growfs", dir), m.Unmount(ctx))
}

// run runs a command, returning its output in the error when it fails.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
