package volume_test

import (
	"github.com/encfs/encfs/blockdev"
	"github.com/encfs/encfs/volume"
)

// A volume is what blockdev serves through FUSE.
var _ blockdev.Device = (*volume.Volume)(nil)

// Both stores satisfy the contract.
var _ volume.Store = (*volume.FileStore)(nil)
