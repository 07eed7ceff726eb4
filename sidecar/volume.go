package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/location"
	"github.com/encfs/encfs/blockdev"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/metrics"
	"github.com/encfs/encfs/mount"
	"github.com/encfs/encfs/volume"
	"github.com/encfs/encfs/volume/writeback"
)

// A read-write volume is mounted through blockdev: the decrypted volume is served as one FUSE
// file, a loop device is attached to it, and the kernel mounts the volume's ext4 or xfs at the
// mount point. The volume's store is a local file (flock) or an Azure page blob (lease).

// VolumeOptions make a MountSpec a read-write volume instead of an image. Its Image is the
// volume's store: a local path or a page blob URL.
type VolumeOptions struct {
	// ReadOnly mounts the filesystem read-only and opens the store without taking the
	// writer's lock or lease.
	ReadOnly bool
	// MinGeneration refuses a volume whose committed generation is lower: an older copy of the
	// whole store being served (the one rollback a volume cannot detect by itself).
	MinGeneration uint64
	// FS is the filesystem type; empty detects it from the volume (ext4 or xfs).
	FS string
	// LeaseWait is how long the writer of a page blob waits for another writer's lease to end
	// before it is refused (see StoreOptions).
	LeaseWait time.Duration
}

// StoreOptions say how to open a volume's store.
type StoreOptions struct {
	// ReadOnly opens without the writer's flock or lease.
	ReadOnly bool
	// Blob is how to reach a page blob.
	Blob location.Options
	// LeaseWait is how long a writer waits for another writer's lease on a page blob to end
	// before it is refused (0: refused at once). A writer that was killed holds its lease up
	// to 60 s after its last renewal. A local file needs no wait: the kernel drops the flock
	// of a process that ends.
	LeaseWait time.Duration
}

// ConfigLeaseWait is the LeaseWait of a read-write filesystem mounted from a configuration:
// a sidecar restarted after it was killed takes its volume back once the old lease ends.
const ConfigLeaseWait = 90 * time.Second

// OpenVolumeStore opens the store of a volume: a local file (flock for a writer) or an Azure
// page blob (its lease for a writer).
func OpenVolumeStore(ctx context.Context, target string, o StoreOptions) (volume.Store, error) {
	target = strings.TrimPrefix(target, "file://")
	if !blobio.IsRemote(target) {
		s, err := volume.OpenFileStore(target, o.ReadOnly)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	pb, err := azure.OpenPageBlob(ctx, target, azure.PageBlobOptions{Options: azureOptions(o.Blob), ReadOnly: o.ReadOnly, LeaseWait: o.LeaseWait})
	if err != nil {
		return nil, err
	}
	if o.ReadOnly {
		return pb, nil
	}
	// A page write is a round trip to the service: the write-back cache acknowledges writes
	// from memory and sends them in large parallel Put Page requests, at the latest at the
	// next flush.
	return writeback.New(pb, writeback.Options{}), nil
}

// pageBlobMemory is what the write-back cache in front of a page blob holds: its dirty pages
// and one 4 MiB buffer per write-out in flight.
const pageBlobMemory = writeback.DefaultMaxDirty + writeback.DefaultParallel*volume.MaxWrite

// azureOptions are the options of a page blob: those of images, with any Azure host accepted
// for a URL that location.Options says is Azure.
func azureOptions(o location.Options) azure.Options { return o.AzureOptions() }

// CreateVolumeOptions describe a new volume.
type CreateVolumeOptions struct {
	Size  int64  // bytes, a multiple of 4096
	FS    string // ext4 (default) or xfs
	Label string
	Blob  location.Options
	Log   *slog.Logger
	// Preallocate writes the whole store at creation (local files only; see
	// volume.FileStore.Preallocate).
	Preallocate bool
}

// CreateVolume creates target (a local file that must not exist, or a page blob that must not
// exist), writes a new volume into it that releaseKey opens, and makes a filesystem on it
// through the same device path a mount uses, so that the first mount finds it ready. A local
// file is removed again if any step fails; a page blob is left for the operator to delete.
func CreateVolume(ctx context.Context, target string, releaseKey []byte, o CreateVolumeOptions) (info *volume.Info, err error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	target = strings.TrimPrefix(target, "file://")
	if o.Preallocate && blobio.IsRemote(target) {
		return nil, fmt.Errorf("preallocation is for a volume in a local file: Azure allocates a page blob's pages as they are written, and writing all of them would bill them all")
	}
	var s volume.Store
	if blobio.IsRemote(target) {
		// The smallest blob; volume.Create resizes it to what the format needs.
		if err := azure.CreatePageBlob(ctx, target, volume.PageSize, azure.PageBlobOptions{Options: azureOptions(o.Blob)}); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				err = fmt.Errorf("%w (the page blob was created and is left as it is: delete it before trying again)", err)
			}
		}()
		if s, err = OpenVolumeStore(ctx, target, StoreOptions{Blob: o.Blob}); err != nil {
			return nil, err
		}
	} else {
		fs, err := volume.CreateFileStore(target, 0)
		if err != nil {
			return nil, err
		}
		s = fs
		defer func() {
			if err != nil {
				os.Remove(target)
			}
		}()
	}
	if _, err := volume.Create(ctx, s, releaseKey, volume.CreateOptions{Size: o.Size, Label: o.Label, Preallocate: o.Preallocate}); err != nil {
		s.Close()
		return nil, err
	}
	v, err := volume.Open(ctx, s, [][]byte{releaseKey}, volume.OpenOptions{Log: o.Log})
	if err != nil {
		s.Close()
		return nil, err
	}
	mkfsErr := blockdev.Mkfs(ctx, v, o.FS)
	if err := errors.Join(mkfsErr, v.Close(ctx)); err != nil {
		return nil, err
	}
	in := v.Info() // as committed by Close
	return &in, nil
}

// volumeMount is the volume half of a Mounted.
type volumeMount struct {
	vol   *volume.Volume
	block *blockdev.Mounted
	// dir is where the filesystem is mounted: the mount point, or the hidden directory the
	// mount point is published as a symlink to (MountSpec.Publish), as for images.
	dir     string
	publish bool
	// createdDir: mountVolume created dir, so unmount removes it.
	createdDir bool
	// The store's write-back cache and page blob, for their metrics (nil for a local file).
	writeBack *writeback.Store
	pageBlob  *azure.PageBlob
	readOnly  bool
}

// mountVolume opens the volume of spec (the store, then the keys), mounts its filesystem and
// writes the ready file.
func mountVolume(ctx context.Context, spec MountSpec) (*Mounted, error) {
	vo := spec.Volume
	// What a killed earlier run left (a filesystem on a loop device backed by a dead FUSE
	// file) would hold the mount point; only dead ones are touched.
	if err := blockdev.CleanStale(spec.Log); err != nil {
		spec.Log.Warn("cleaning up after an earlier run", "err", err)
	}
	if err := mount.Check(mount.Options{Mountpoint: spec.Mountpoint, Publish: spec.Publish, HiddenDir: spec.HiddenDir}); err != nil {
		return nil, err
	}
	dir := spec.Mountpoint
	if spec.Publish {
		if dir = spec.HiddenDir; dir == "" {
			dir = mount.HiddenDir(spec.Mountpoint)
		}
	}
	// The store first: a second writer is refused before a key is released.
	s, err := OpenVolumeStore(ctx, spec.Image, StoreOptions{ReadOnly: vo.ReadOnly, Blob: spec.Source.Blob, LeaseWait: vo.LeaseWait})
	if err != nil {
		return nil, err
	}
	ks, err := spec.Keys(ctx)
	defer func() {
		for _, k := range ks {
			keys.Zero(k)
		}
	}()
	if err != nil {
		s.Close()
		return nil, err
	}
	v, err := volume.Open(ctx, s, ks, volume.OpenOptions{ReadOnly: vo.ReadOnly, MinGeneration: vo.MinGeneration, Log: spec.Log})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", blobio.Display(spec.Image), err)
	}
	vm := &volumeMount{vol: v, readOnly: vo.ReadOnly, dir: dir, publish: spec.Publish}
	vm.pageBlob, _ = s.(*azure.PageBlob)
	if wb, ok := s.(*writeback.Store); ok {
		vm.writeBack = wb
		vm.pageBlob, _ = wb.Inner().(*azure.PageBlob)
	}
	if vm.createdDir, err = mount.MakeMountPoint(dir); err != nil {
		v.Close(ctx)
		return nil, err
	}
	vm.block, err = blockdev.Mount(ctx, v, dir, blockdev.Options{FS: vo.FS, ReadOnly: vo.ReadOnly, Log: spec.Log})
	if err != nil {
		if vm.createdDir {
			os.Remove(dir)
		}
		return nil, errors.Join(err, v.Close(ctx))
	}
	m := &Mounted{Spec: spec, vol: vm}
	if spec.Publish {
		if err := mount.Publish(spec.Mountpoint, dir); err != nil {
			m.Unmount()
			return nil, err
		}
	}
	if spec.ReadyFile != "" {
		if err := writeReadyFile(spec.ReadyFile, spec.Mountpoint); err != nil {
			m.Unmount()
			return nil, err
		}
	}
	return m, nil
}

// stats reports a volume in the metrics of images: the loop device's reads and their errors
// as the filesystem's, the blocks read and integrity failures of the volume as the image's.
// Read errors count as integrity errors up to the number of blocks that failed to
// authenticate (a request may cover several), the rest as I/O errors.
func (vm *volumeMount) stats() metrics.Stats {
	b, v := vm.block.Stats(), vm.vol.Stats()
	errs := b.ReadErrors + b.WriteErrors + b.FlushErrors
	vs := &metrics.VolumeStats{Writes: b.Writes, BytesWritten: b.BytesWritten, WriteErrors: b.WriteErrors,
		Flushes: b.Flushes, FlushErrors: b.FlushErrors, Commits: v.Flushes, CommitFailures: v.FlushFailures, CommitTime: v.FlushTime}
	switch {
	case vm.writeBack != nil:
		w := vm.writeBack.Stats()
		vs.WriteBack = &metrics.WriteBackStats{DirtyBytes: w.DirtyBytes, WriteOutBytes: w.WriteOutBytes, WriteOutErrors: w.WriteOutErrors, Waits: w.Waits}
	case !vm.readOnly:
		// A local file is written through: nothing is ever waiting in a cache. Zeros keep the
		// series (and dashboards and alerts over them) the same for every writable volume.
		vs.WriteBack = &metrics.WriteBackStats{}
	}
	if !vm.readOnly {
		held := vm.pageBlob == nil || vm.pageBlob.LeaseHeld() // a local file's flock lasts until close
		vs.WriterLockHeld = &held
	}
	return metrics.Stats{
		FS:     encfs.Stats{BytesRead: b.BytesRead, Reads: b.Reads, ReadErrors: errs, IntegrityErrors: min(v.IntegrityFailures, b.ReadErrors)},
		Image:  image.Stats{BlocksVerified: v.BlocksRead, IntegrityFailures: v.IntegrityFailures},
		Volume: vs,
	}
}

// unmount takes the published symlink down first, if any, then unmounts the filesystem
// (which flushes the volume) and closes the volume: a final commit, and the store's lock or
// lease released.
func (vm *volumeMount) unmount(mountpoint string) error {
	ctx := context.Background()
	var err error
	if vm.publish {
		err = mount.Unpublish(mountpoint, vm.dir)
	}
	err = errors.Join(err, vm.block.Unmount(ctx), vm.vol.Close(ctx))
	if vm.createdDir {
		os.Remove(vm.dir)
	}
	return err
}
