package blockdev

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
)

// ErrNoFilesystem reports a device that holds neither ext4 nor xfs.
var ErrNoFilesystem = errors.New("no ext4 or xfs filesystem on the device")

// Detect names the filesystem on dev from its superblock's magic number: "ext4" (ext2, ext3
// and ext4 all carry 0xEF53 at byte 1080) or "xfs" ("XFSB" at byte 0). Mount uses it when
// Options.FS is empty, so a volume's filesystem type need not be stored anywhere else.
func Detect(ctx context.Context, dev Device) (string, error) {
	var sb [4096]byte
	if dev.Size() < int64(len(sb)) {
		return "", ErrNoFilesystem
	}
	if err := dev.ReadAt(ctx, sb[:], 0); err != nil {
		return "", err
	}
	switch {
	case bytes.Equal(sb[:4], []byte("XFSB")):
		return "xfs", nil
	case binary.LittleEndian.Uint16(sb[1080:]) == 0xEF53:
		return "ext4", nil
	}
	return "", ErrNoFilesystem
}
