package sidecar

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"time"

	"github.com/encfs/encfs/blobio"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/metrics"
	"github.com/encfs/encfs/mount"
	"github.com/encfs/encfs/profile"
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
	// stopBackground ends the background fetch, if one runs, and waits for it: the image is
	// closed after it.
	stopBackground func()
	// recorder collects the first reads for Spec.RecordProfile; stopRecorder ends its flushes.
	recorder     *profile.Recorder
	stopRecorder chan struct{}
	recorderDone chan struct{}
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
	var replay *profile.Profile
	if isProfilePath(spec.Prefetch) { // a bad profile fails now, before the key release
		var err error
		if replay, err = profile.Load(spec.Prefetch); err != nil {
			return nil, err
		}
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
	if spec.RecordProfile != "" {
		m.recorder = profile.NewRecorder(im.Header().UUIDString())
		fo.FirstRead = m.recorder.Add
	}
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
	if m.recorder != nil {
		m.startRecorder()
	}
	if spec.ReadyFile != "" {
		if err := writeReadyFile(spec.ReadyFile, m.Point.Target); err != nil {
			m.Unmount()
			return nil, err
		}
	}
	if ch, ok := src.(*blobio.Chunked); ok && blobio.IsRemote(spec.Image) {
		m.startBackgroundFetch(ch, replay)
	}
	return m, nil
}

// backgroundFetchDelay is how long a fresh mount serves its readers alone before the
// background fetch starts: with it started at once, the first byte of a file took 200-420 ms
// instead of 90-130 ms against Azurite.
const backgroundFetchDelay = time.Second

// isProfilePath reports whether a Prefetch setting names an access profile file.
func isProfilePath(prefetch string) bool {
	switch prefetch {
	case "", "auto", "all", "none":
		return false
	}
	return true
}

// startBackgroundFetch starts the background fetch the spec asks for:
//   - none: nothing;
//   - an access profile (a file given as Prefetch, else the one stored in the image): the files
//     it names first, in its order, each file's extent, then as auto;
//   - all: the whole image, in order, into the caches;
//   - auto (the default): as all when the image fits the memory and disk caches.
//
// Every file is then read at the speed of one sequential download, whatever the order, and
// demand reads always go first (blobio.Chunked.FetchAll).
func (m *Mounted) startBackgroundFetch(ch *blobio.Chunked, replay *profile.Profile) {
	size, room := ch.Size(), ch.MemoryCacheBytes()+ch.DiskCacheBytes()
	if m.Spec.Prefetch == "none" {
		return
	}
	whole := m.Spec.Prefetch == "all" || size <= room
	if whole {
		ch.ExpectFetchAll()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stopBackground = func() { cancel(); <-done }
	go func() {
		defer close(done)
		// The first reads of a fresh mount (the index, the first files) would otherwise queue
		// at the storage behind the background's requests.
		select {
		case <-time.After(backgroundFetchDelay):
		case <-ctx.Done():
			return
		}
		inodes, from := m.profileToReplay(ctx, replay)
		if len(inodes) > 0 {
			start := time.Now()
			m.Spec.Log.Info("background fetch: the files of the access profile first", "profile", from, "files", len(inodes))
			if err := ch.FetchRanges(ctx, m.replayRanges(ctx, inodes, room)); err != nil {
				return // unmounting
			}
			m.Spec.Log.Info("background fetch: the access profile's files are fetched", "took", time.Since(start).Round(time.Millisecond).String())
		}
		if !whole {
			m.Spec.Log.Info("background fetch: off, the image is larger than the caches (prefetch all fetches it anyway)",
				"image_bytes", size, "cache_bytes", room)
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

// profileToReplay returns the access profile to replay: the file given, else the image's own.
func (m *Mounted) profileToReplay(ctx context.Context, given *profile.Profile) (inodes []uint64, from string) {
	if given != nil {
		return given.Inodes, "file"
	}
	inodes, err := m.Image.Profile(ctx)
	if err != nil {
		m.Spec.Log.Warn("background fetch: the image's access profile cannot be read; fetching without it", "err", err)
		return nil, ""
	}
	return inodes, "image"
}

// replayRanges yields what the replay of an access profile fetches, in order: the integrity
// tree whole, when it takes at most an eighth of the caches (room bytes), so that the first
// read of each file finds the tree blocks that verify it at hand instead of fetching them then;
// then the image extent of each regular file of inodes, in order. Entries that name no regular
// file of this image are skipped.
func (m *Mounted) replayRanges(ctx context.Context, inodes []uint64, room int64) iter.Seq2[int64, int64] {
	return func(yield func(int64, int64) bool) {
		if off, n := m.Image.TreeExtent(); n <= room/8 && !yield(off, n) {
			return
		}
		for _, ino := range inodes {
			if ino >= m.Image.Superblock().InodeCount {
				continue
			}
			in, err := m.Image.Inode(ctx, ino)
			if err != nil {
				continue
			}
			if off, n, ok := m.Image.FileExtent(&in); ok && !yield(off, n) {
				return
			}
		}
	}
}

// ProfileFlushInterval is how often a recorded access profile is written while it grows, so
// that a sidecar that is killed leaves most of it behind.
const ProfileFlushInterval = 10 * time.Second

// startRecorder writes the recorded profile every ProfileFlushInterval while it changes.
func (m *Mounted) startRecorder() {
	m.stopRecorder, m.recorderDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.recorderDone)
		t := time.NewTicker(ProfileFlushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				m.flushProfile()
			case <-m.stopRecorder:
				return
			}
		}
	}()
}

// flushProfile writes the profile recorded so far, if it changed.
func (m *Mounted) flushProfile() {
	p, changed := m.recorder.Snapshot()
	if !changed {
		return
	}
	if err := p.WriteFile(m.Spec.RecordProfile); err != nil {
		m.Spec.Log.Warn("access profile not written", "err", err)
	}
}

// Unmount removes the ready file, unmounts and closes the image.
func (m *Mounted) Unmount() error {
	if m.stopBackground != nil {
		m.stopBackground()
	}
	if m.recorder != nil {
		close(m.stopRecorder)
		<-m.recorderDone
		p, _ := m.recorder.Snapshot()
		if err := p.WriteFile(m.Spec.RecordProfile); err != nil {
			m.Spec.Log.Warn("access profile not written", "err", err)
		} else {
			m.Spec.Log.Info("access profile written", "path", m.Spec.RecordProfile, "files", len(p.Inodes))
		}
		m.recorder = nil // written once, however often Unmount is called
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
