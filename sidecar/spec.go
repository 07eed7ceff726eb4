package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/location"
	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/retry"
	"github.com/encfs/encfs/keys"
)

// MountSpec is one filesystem to mount. `encfs mount` builds one from its flags; a
// configuration lists several (SpecsFromConfig), each with its own key provider.
type MountSpec struct {
	Name       string // for logs: "filesystem 0 (/mnt/data)" from a config; empty for one mount
	Image      string // local path or URL, as OpenSource takes it
	Source     SourceOptions
	Pin        image.Pin // rollback protection, checked before anything is mounted
	Mountpoint string
	// Keys returns the release keys to try. Mount zeroes them once the image is open.
	Keys       func(ctx context.Context) ([][]byte, error)
	CacheBytes int64 // verified-plaintext cache of the image reader
	// RequestTimeout bounds each FUSE request's wait for storage (--read-timeout).
	RequestTimeout time.Duration
	// Prefetch is auto, all, none, or the path of an access profile: what a remote image's
	// background fetch brings, in which order (see startBackgroundFetch).
	Prefetch string
	// RecordProfile, if set, is where the order of first reads is written (package profile):
	// every ProfileFlushInterval while it changes, and at unmount.
	RecordProfile string
	AllowOther    bool
	UID, GID      *uint32 // owner override
	Publish       bool    // mount at a hidden directory and publish Mountpoint as a symlink to it
	HiddenDir     string  // where Publish mounts; default beside Mountpoint
	LogPaths      bool    // name paths inside the image in error logs (debugging only)
	ReadyFile     string  // written once the mount is live, removed at unmount
	Log           *slog.Logger
	// Volume, when set, makes Image a read-write volume's store, mounted through a loop
	// device; the image-only fields (Pin, CacheBytes, Prefetch, RecordProfile, UID, GID) are
	// unused.
	Volume *VolumeOptions
}

// Options are what SpecsFromConfig needs beyond the configuration.
type Options struct {
	// KeyRelease is the release configuration each filesystem's Azure key release starts from;
	// the configuration's key, vault, attestation authority, identity and certificate cache
	// are written over it (see config.FileSystem.AzureSKRConfig). It holds what a
	// configuration does not say: the SEV-SNP device, the HTTP client and trust roots, retry
	// timing. The zero value is production's.
	KeyRelease keys.AzureSKRConfig
	// LogPaths names paths inside the images in error logs (--log-paths; debugging only).
	LogPaths bool
}

// ConfigReadTimeout bounds each read of a filesystem mounted from a configuration, as
// --read-timeout does for one given by flags.
const ConfigReadTimeout = 30 * time.Second

// DefaultCacheBytes is the verified-plaintext cache of a filesystem whose configuration sets no
// cache_size.
const DefaultCacheBytes = 256 << 20

// SpecsFromConfig turns each filesystem of a configuration into a MountSpec.
func SpecsFromConfig(c *config.Config, o Options) ([]MountSpec, error) {
	var specs []MountSpec
	for i, fsys := range c.AzureFilesystems {
		name := fmt.Sprintf("filesystem %d (%s)", i, fsys.MountPoint)
		provider, err := fsys.KeyProvider(c.AzureInfo, o.KeyRelease)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cache := int64(fsys.CacheSize)
		if cache == 0 {
			cache = DefaultCacheBytes
		}
		log := slog.Default().With("filesystem", i, "mount_point", fsys.MountPoint)
		var vol *VolumeOptions
		if fsys.ReadWrite {
			vol = &VolumeOptions{MinGeneration: fsys.MinGeneration, LeaseWait: ConfigLeaseWait}
		}
		specs = append(specs, MountSpec{
			Name: name, Image: fsys.AzureURL, Mountpoint: fsys.MountPoint, CacheBytes: cache, RequestTimeout: ConfigReadTimeout,
			Prefetch: fsys.Prefetch, RecordProfile: fsys.RecordProfile,
			AllowOther: os.Geteuid() == 0, Publish: fsys.PublishSymlink, HiddenDir: fsys.HiddenMountPoint(i), Log: log,
			LogPaths: o.LogPaths,
			Volume:   vol,
			Pin:      image.Pin{Root: fsys.PinnedRoot, Series: fsys.Series, MinGeneration: fsys.MinGeneration, Signer: fsys.PinnedSigner},
			Source: SourceOptions{
				Blob:  location.Options{ClientID: c.AzureInfo.Identity.ClientID, Retry: retry.Policy{Budget: ConfigReadTimeout}},
				Chunk: blobio.ChunkOptions{DiskCache: configDiskCache(fsys.DiskCacheDir), DiskCacheBytes: int64(fsys.DiskCacheSize)},
			},
			Keys: func(ctx context.Context) ([][]byte, error) {
				log.Info("obtaining the release key", "provider", provider.String())
				k, err := provider.ReleaseKey(ctx)
				if err != nil {
					return nil, err
				}
				return [][]byte{k}, nil
			},
		})
	}
	return specs, nil
}

// configDiskCache is the disk cache of a configuration's disk_cache_dir: empty for an
// automatic one, none for none.
func configDiskCache(dir string) string {
	switch dir {
	case "":
		return blobio.AutoDiskCache
	case "none":
		return ""
	}
	return dir
}
