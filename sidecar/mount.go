package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/encfs/encfs/blobio"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/metrics"
	"github.com/encfs/encfs/mount"
)

// Mounted is a live filesystem made by Mount.
type Mounted struct {
	Spec  MountSpec
	Image *image.Image
	FS    *encfs.FS
	Point *mount.Point
	// Health is the state of the image's storage, for /healthz and /readyz; nil for a source
	// that does not follow it (a local file).
	Health func() blobio.Health
	// stopBackground ends the background fetch, if one runs.
	stopBackground context.CancelFunc
	// vol is set for a read-write volume (Spec.Volume), instead of Image, FS and Point.
	vol *volumeMount
}

// Target is the path consumers use.
func (m *Mounted) Target() string {
	if m.vol != nil {
		return m.Spec.Mountpoint
	}
	return m.Point.Target
}

// Done is closed when the filesystem stops being served.
func (m *Mounted) Done() <-chan struct{} {
	if m.vol != nil {
		return m.vol.block.Done()
	}
	return m.Point.Done()
}

// Describe is the line that reports the mount: identity, no counts or sizes (they are part of
// what an image encrypts, and this line leaves the TEE with the container's logs).
func (m *Mounted) Describe() string {
	if m.vol != nil {
		in := m.vol.vol.Info()
		mode := "read-write"
		if m.Spec.Volume.ReadOnly {
			mode = "read-only"
		}
		return fmt.Sprintf("volume %s at %s (%s, uuid %s, generation %d)", blobio.Display(m.Spec.Image), m.Target(), mode, in.UUID, in.Generation)
	}
	h := m.Image.Header()
	return fmt.Sprintf("%s at %s (uuid %s, series %s, generation %d)", blobio.Display(m.Spec.Image), m.Target(),
		h.UUIDString(), h.SeriesHex(), h.Generation)
}

// Mount opens and authenticates the image (a wrong key fails here, before anything is
// mounted), checks the pins, mounts it, writes the ready file and starts the background fetch.
func Mount(ctx context.Context, spec MountSpec) (*Mounted, error) {
	if spec.Log == nil {
		spec.Log = slog.Default()
	}
	if spec.Volume != nil {
		return mountVolume(ctx, spec)
	}
	// A mount point in use fails now, not after a key release and the image's download.
	if err := mount.Check(mount.Options{Mountpoint: spec.Mountpoint, Publish: spec.Publish, HiddenDir: spec.HiddenDir}); err != nil {
		return nil, err
	}
	ks, err := spec.Keys(ctx)
	defer func() {
		for _, k := range ks {
			keys.Zero(k)
		}
	}()
	if err != nil {
		return nil, err
	}
	spec.Source.Chunk.Log = spec.Log
	src, err := openMountSource(ctx, spec.Image, spec.Source)
	if err != nil {
		return nil, err
	}
	im, err := image.Open(ctx, metrics.Count(src), ks, image.Options{CacheBytes: spec.CacheBytes})
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("%s: %w", blobio.Display(spec.Image), err)
	}
	if err := spec.Pin.Check(im.Header()); err != nil {
		im.Close()
		return nil, fmt.Errorf("%s: %w", blobio.Display(spec.Image), err)
	}
	m := &Mounted{Spec: spec, Image: im}
	if h, ok := src.(interface{ Health() blobio.Health }); ok {
		m.Health = h.Health
	}
	fo := encfs.Options{UID: spec.UID, GID: spec.GID, Log: spec.Log, RequestTimeout: spec.RequestTimeout, LogPaths: spec.LogPaths}
	if m.FS, err = encfs.New(ctx, im, fo); err != nil {
		im.Close()
		return nil, err
	}
	m.Point, err = mount.Mount(m.FS, mount.Options{Mountpoint: spec.Mountpoint, Publish: spec.Publish, HiddenDir: spec.HiddenDir,
		AllowOther: spec.AllowOther, Log: spec.Log})
	if err != nil {
		im.Close()
		return nil, err
	}
	if spec.ReadyFile != "" {
		if err := writeReadyFile(spec.ReadyFile, m.Point.Target); err != nil {
			m.Unmount()
			return nil, err
		}
	}
	if ch, ok := src.(*blobio.Chunked); ok && blobio.IsRemote(spec.Image) {
		m.startBackgroundFetch(ch)
	}
	return m, nil
}

// backgroundFetchDelay is how long a fresh mount serves its readers alone before the
// background fetch starts: with it started at once, the first byte of a file took 200-420 ms
// instead of 90-130 ms against Azurite.
const backgroundFetchDelay = time.Second

// startBackgroundFetch fetches the whole image into the caches in the background when the
// spec asks for it (all), or by default when the image fits the memory and disk caches (auto):
// every file is then read at the speed of one sequential download, whatever the order.
func (m *Mounted) startBackgroundFetch(ch *blobio.Chunked) {
	size, room := ch.Size(), ch.MemoryCacheBytes()+ch.DiskCacheBytes()
	switch m.Spec.Prefetch {
	case "none":
		return
	case "all":
	default: // auto
		if size > room {
			m.Spec.Log.Info("background fetch: off, the image is larger than the caches (prefetch all fetches it anyway)",
				"image_bytes", size, "cache_bytes", room)
			return
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopBackground = cancel
	go func() {
		// The first reads of a fresh mount (the index, the first files) would otherwise queue
		// at the storage behind the background's requests.
		select {
		case <-time.After(backgroundFetchDelay):
		case <-ctx.Done():
			return
		}
		start := time.Now()
		m.Spec.Log.Info("background fetch: started", "image_bytes", size, "cache_bytes", room)
		if err := ch.FetchAll(ctx); err != nil {
			return // unmounting
		}
		m.Spec.Log.Info("background fetch: done", "took", time.Since(start).Round(time.Millisecond).String(),
			"chunks_fetched", ch.Stats().BackgroundFetches)
	}()
}

// Unmount removes the ready file, unmounts and closes the image.
func (m *Mounted) Unmount() error {
	if m.stopBackground != nil {
		m.stopBackground()
	}
	if m.Spec.ReadyFile != "" {
		os.Remove(m.Spec.ReadyFile)
	}
	if m.vol != nil {
		return m.vol.unmount(m.Spec.Mountpoint)
	}
	err := m.Point.Unmount()
	if cerr := m.Image.Close(); err == nil {
		err = cerr
	}
	return err
}

// unmounted reports whether the filesystem is gone (unmounted by Unmount or from outside).
func (m *Mounted) unmounted() bool {
	select {
	case <-m.Done():
		return true
	default:
		return false
	}
}

// writeReadyFile atomically writes the mount path into path, so a watcher never reads it
// half-written.
func writeReadyFile(path, target string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(target+"\n"), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}
