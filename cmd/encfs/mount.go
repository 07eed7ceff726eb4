package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/location"
	"github.com/encfs/encfs/config"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/retry"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/metrics"
	"github.com/encfs/encfs/mount"
)

// MountSpec is one filesystem to mount. `encfs mount` builds one from its flags; a config
// file can list several, each with its own key provider.
type MountSpec struct {
	Name       string // for logs: "filesystem 0 (/mnt/data)" from a config; empty for one mount
	Image      string // local path or URL, as openSource takes it
	Source     sourceOptions
	Pin        image.Pin // rollback protection, checked before anything is mounted
	Mountpoint string
	// Keys returns the release keys to try. mountOne zeroes them once the image is open.
	Keys       func(ctx context.Context) ([][]byte, error)
	CacheBytes int64 // verified-plaintext cache of the image reader
	// RequestTimeout bounds each FUSE request's wait for storage (--read-timeout).
	RequestTimeout time.Duration
	// Prefetch is auto, all or none: whether to fetch a remote image whole in the background.
	Prefetch   string
	AllowOther bool
	UID, GID   *uint32 // owner override
	Publish    bool    // mount at a hidden directory and publish Mountpoint as a symlink to it
	HiddenDir  string  // where Publish mounts; default beside Mountpoint
	LogPaths   bool    // name paths inside the image in error logs (debugging only)
	ReadyFile  string  // written once the mount is live, removed at unmount
	Log        *slog.Logger
}

// Mounted is a live filesystem made by mountOne.
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
}

// openMountSource opens the image of a mount: a local image is read the way
// blobio.FileSource.ForMount says.
func openMountSource(ctx context.Context, loc string, o sourceOptions) (image.Source, error) {
	return openSourceFor(ctx, loc, o, true)
}

// mountOne opens and authenticates the image (a wrong key fails here, before anything is
// mounted), mounts it, and writes the ready file.
func mountOne(ctx context.Context, spec MountSpec) (*Mounted, error) {
	if spec.Log == nil {
		spec.Log = slog.Default()
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
			m.Spec.Log.Info("background fetch: off, the image is larger than the caches (--prefetch all to fetch it anyway)",
				"image_bytes", size, "cache_bytes", room)
			return
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopBackground = cancel
	go func() {
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
	err := m.Point.Unmount()
	if cerr := m.Image.Close(); err == nil {
		err = cerr
	}
	return err
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

func init() {
	var (
		keyFiles                         []string
		allowOther, publish, logPaths    bool
		allowKeyFileInTEE                bool
		uid, gid                         int64
		cacheSize, readyFile, metricAddr string
		configFile, configEnv, pinRoot   string
		pinSeries, pinSigner             string
		minGeneration                    uint64
		srcFlags                         *sourceFlags
		prefetch                         string
	)
	cmd := &cobra.Command{
		Use:   "mount (--key-file KEY IMAGE MOUNTPOINT | --config FILE | --config-env NAME)",
		Short: "Mount images read-only with FUSE and serve them until SIGTERM or SIGINT",
		Long: `Mount IMAGE (a local path or a URL) at MOUNTPOINT, read-only, in the foreground. One line is
printed when the mount is live; SIGTERM or SIGINT unmounts it (retrying while files are open,
then detaching it lazily) and exits 0. A dead mount left at MOUNTPOINT by a crashed run is
removed first; a live one (another encfs, any other filesystem) is never taken over. The parent
of MOUNTPOINT must exist; MOUNTPOINT itself is created if missing and removed at unmount.

IMAGE may instead come from --url-file FILE or the ENCFS_URL environment variable: a SAS URL on
the command line can be read by every local user.

Every block is verified against the image's integrity tree before a byte of it is returned; a
block that fails gives EIO to the reads that need it, is logged, and counted in the metrics.

--publish-symlink mounts at a hidden directory beside MOUNTPOINT (.NAME.encfs-mnt) and then
atomically makes MOUNTPOINT a symlink to it, so consumers see the path only once it is ready.

With --config FILE (JSON) or --config-env NAME (base64 JSON in that environment variable, as
the reference sidecar's EncfsSideCarArgs), every filesystem of the configuration is mounted,
each with its own key (a key file, or Azure secure key release after SEV-SNP attestation) and
each independently: one that fails is reported and the others keep serving.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if configFile != "" || configEnv != "" {
				if len(args) != 0 {
					return errors.New("with --config or --config-env, give no IMAGE or MOUNTPOINT: the configuration names them")
				}
				return nil
			}
			if err := locationArgs(srcFlags.loc, 2, 2)(cmd, args); err != nil {
				return fmt.Errorf("give IMAGE and MOUNTPOINT (IMAGE may come from --url-file or ENCFS_URL instead), or --config FILE / --config-env NAME: %w", err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if configFile != "" || configEnv != "" {
				if err := noImageFlags(cmd); err != nil {
					return err
				}
				c, err := loadConfig(configFile, configEnv)
				if err != nil {
					return err
				}
				if err := checkConfigForTEE(c, allowKeyFileInTEE, slog.Default()); err != nil {
					return err
				}
				specs, err := specsFromConfig(c)
				if err != nil {
					return err
				}
				for i := range specs {
					specs[i].LogPaths = logPaths
				}
				warnLogPaths(logPaths)
				return runMounts(ctx, cmd.OutOrStdout(), specs, metricAddr, readyFile)
			}
			args, err := srcFlags.withLocation(args, 2)
			if err != nil {
				return err
			}
			cache, err := config.ParseByteSize(cacheSize)
			if err != nil {
				return fmt.Errorf("--cache-size: %w", err)
			}
			so, err := srcFlags.options()
			if err != nil {
				return err
			}
			if err := checkPrefetch(prefetch); err != nil {
				return err
			}
			spec := MountSpec{Image: args[0], Mountpoint: args[1], Source: so, CacheBytes: int64(cache), RequestTimeout: srcFlags.readTimeout, Prefetch: prefetch,
				AllowOther: allowOther, Publish: publish, ReadyFile: readyFile, Log: slog.Default(), LogPaths: logPaths,
				Pin: image.Pin{Root: pinRoot, Series: pinSeries, MinGeneration: minGeneration, Signer: pinSigner},
				Keys: func(context.Context) ([][]byte, error) {
					ks, _, err := readKeyFiles(keyFiles)
					return ks, err
				}}
			if err := spec.Pin.Validate(); err != nil {
				return err
			}
			if spec.UID, err = optionalID("--uid", uid); err != nil {
				return err
			}
			if spec.GID, err = optionalID("--gid", gid); err != nil {
				return err
			}
			warnLogPaths(logPaths)
			return runMounts(ctx, cmd.OutOrStdout(), []MountSpec{spec}, metricAddr, "")
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keyFiles, "key-file", nil, "release key file (repeat to try several)")
	f.BoolVar(&allowOther, "allow-other", os.Geteuid() == 0, "let other users read the mount (default on as root)")
	f.Int64Var(&uid, "uid", -1, "report every file as owned by this uid (default: as packed)")
	f.Int64Var(&gid, "gid", -1, "report every file as owned by this gid (default: as packed)")
	f.StringVar(&cacheSize, "cache-size", "256M", "verified-plaintext cache size (e.g. 64M, 1G)")
	f.StringVar(&readyFile, "ready-file", "", "write the mount path to this file once the mount is live")
	f.BoolVar(&publish, "publish-symlink", false, "mount at a hidden directory and publish MOUNTPOINT as a symlink to it")
	f.StringVar(&pinRoot, "pinned-root", "", "refuse any image whose integrity root is not this (hex, as encfs inspect prints it)")
	f.Uint64Var(&minGeneration, "min-generation", 0, "refuse images of the series with a lower generation number (needs --series)")
	f.StringVar(&pinSeries, "series", "", "refuse images of any other series (hex, as encfs inspect prints it)")
	f.StringVar(&pinSigner, "pinned-signer", "", "accept only images of the series signed by this publisher key (hex; needs --series)")
	f.BoolVar(&logPaths, "log-paths", false, "debugging: name the file path and offset inside the image in error logs (names and sizes are otherwise kept out of logs, which leave the TEE)")
	f.BoolVar(&allowKeyFileInTEE, "dev-allow-key-file", false, "development: accept key_file in a configuration inside an SEV-SNP environment")
	f.StringVar(&configFile, "config", "", "mount every filesystem of this JSON configuration file")
	f.StringVar(&configEnv, "config-env", "", "mount every filesystem of the base64 JSON configuration in this environment variable (e.g. EncfsSideCarArgs)")
	f.StringVar(&metricAddr, "metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9090; a bare :PORT means localhost; default off)")
	f.StringVar(&prefetch, "prefetch", "auto", "fetch a remote image whole in the background: auto (when it fits the memory and disk caches), all or none")
	srcFlags = addSourceFlags(cmd, blobio.AutoDiskCache)
	rootCmd.AddCommand(cmd)
}

func checkPrefetch(v string) error {
	switch v {
	case "auto", "all", "none":
		return nil
	}
	return fmt.Errorf("--prefetch %q: want auto, all or none", v)
}

// configModeFlags are the mount flags that also apply with --config: everything else is set per
// filesystem in the configuration.
var configModeFlags = map[string]bool{"config": true, "config-env": true, "metrics-addr": true, "ready-file": true, "log-paths": true, "dev-allow-key-file": true,
	"log-level": true, "log-format": true}

// warnLogPaths says at start that --log-paths lets names from inside the image into the logs.
func warnLogPaths(on bool) {
	if on {
		slog.Warn("--log-paths: error logs will name files inside the image and offsets in them; these logs leave the TEE, so use it only for debugging")
	}
}

// noImageFlags refuses per-image flags next to a configuration rather than ignoring them.
func noImageFlags(cmd *cobra.Command) error {
	var bad []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !configModeFlags[f.Name] {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("%s cannot be used with --config or --config-env: set it per filesystem in the configuration (see docs/OPERATIONS.md)", strings.Join(bad, ", "))
	}
	return nil
}

func loadConfig(file, envName string) (*config.Config, error) {
	if file != "" && envName != "" {
		return nil, errors.New("give --config or --config-env, not both")
	}
	if file != "" {
		return config.Load(file)
	}
	return config.FromEnvVar(envName)
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

// configReadTimeout bounds each read of a filesystem mounted from a configuration, as
// --read-timeout does for one given by flags.
const configReadTimeout = 30 * time.Second

// specsFromConfig turns each filesystem of a configuration into a MountSpec. customize is
// passed to the key providers (tests point them at test servers).
func specsFromConfig(c *config.Config, customize ...func(*keys.AzureSKRConfig)) ([]MountSpec, error) {
	var specs []MountSpec
	for i, fsys := range c.AzureFilesystems {
		name := fmt.Sprintf("filesystem %d (%s)", i, fsys.MountPoint)
		provider, err := fsys.KeyProvider(c.AzureInfo, customize...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cache := int64(fsys.CacheSize)
		if cache == 0 {
			cache = 256 << 20
		}
		log := slog.Default().With("filesystem", i, "mount_point", fsys.MountPoint)
		specs = append(specs, MountSpec{
			Name: name, Image: fsys.AzureURL, Mountpoint: fsys.MountPoint, CacheBytes: cache, RequestTimeout: configReadTimeout,
			Prefetch:   fsys.Prefetch,
			AllowOther: os.Geteuid() == 0, Publish: fsys.PublishSymlink, HiddenDir: fsys.HiddenMountPoint(i), Log: log,
			Pin: image.Pin{Root: fsys.PinnedRoot, Series: fsys.Series, MinGeneration: fsys.MinGeneration, Signer: fsys.PinnedSigner},
			Source: sourceOptions{
				Blob:  location.Options{ClientID: c.AzureInfo.Identity.ClientID, Retry: retry.Policy{Budget: configReadTimeout}},
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

// runMounts mounts every spec independently and concurrently (key release included), serves
// metrics if asked, and waits for a signal. A spec that fails is logged and the others keep
// serving; it is an error only when none mounts. /readyz is ready, and readyFile (if set) is
// written with the mount paths, once every spec is mounted.
func runMounts(ctx context.Context, out io.Writer, specs []MountSpec, metricsAddr, readyFile string) error {
	live := make([]atomic.Pointer[Mounted], len(specs))
	collector := metrics.NewCollector()
	states := metrics.NewFilesystems()
	for i := range specs {
		states.Add(strconv.Itoa(i), specs[i].Mountpoint)
	}
	budget, heap := memoryBudget(specs)
	setMemoryLimit(heap, slog.Default())
	collector.SetMemoryBudget(budget)
	slog.Info("memory budget", "bytes", budget, "go_heap_limit", heap)
	if metricsAddr != "" {
		probes := metrics.Probes{
			// Ready: every filesystem is mounted and its storage serving (an outage or an open
			// breaker makes reads fail, so the group should not count on it).
			Ready: func() error {
				for i := range live {
					m := live[i].Load()
					if m == nil {
						return fmt.Errorf("%s is not mounted yet", specs[i].Mountpoint)
					}
					if m.Health != nil {
						if h := m.Health(); h.State != blobio.StateServing {
							return fmt.Errorf("storage of %s: %s since %s: %v", m.Point.Target, h.State, h.Since.Format(time.RFC3339), h.Cause)
						}
					}
				}
				return nil
			},
			// Healthy: nothing that only a restart can mend: a filesystem unmounted from outside,
			// or storage whose breaker is open (blob replaced or deleted, access refused).
			Healthy: func() error {
				for i := range live {
					m := live[i].Load()
					if m == nil {
						continue
					}
					if m.unmounted() {
						return fmt.Errorf("%s is no longer mounted", m.Point.Target)
					}
					if m.Health != nil {
						if h := m.Health(); h.State == blobio.StateBroken {
							return fmt.Errorf("storage of %s: breaker open since %s (%d failed reads): %v",
								m.Point.Target, h.Since.Format(time.RFC3339), h.FailedReads, h.Cause)
						}
					}
				}
				return nil
			},
		}
		addr, err := metrics.Serve(ctx, metricsAddr, metrics.Handler(metrics.NewRegistry(collector, states), probes), slog.Default())
		if err != nil {
			return err
		}
		slog.Info("serving metrics", "addr", addr.String())
	}
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		if spec.Log == nil {
			spec.Log = slog.Default()
		}
		id, keysOf := strconv.Itoa(i), spec.Keys
		spec.Keys = func(ctx context.Context) ([][]byte, error) {
			ks, err := keysOf(ctx)
			states.SetKey(id, metrics.KeyOutcomeOf(err))
			return ks, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			m, err := mountOne(ctx, spec)
			if err != nil {
				states.SetState(id, metrics.StateFailed)
				errs[i] = err
				if len(specs) > 1 {
					errs[i] = fmt.Errorf("%s: %w", spec.Name, err)
					spec.Log.Error("filesystem not mounted; the others keep serving", "err", err)
				}
				return
			}
			collector.Add(m.Point.Target, metrics.For(m.FS))
			live[i].Store(m)
			states.SetState(id, metrics.StateMounted)
			go func() {
				select {
				case <-m.Point.Done():
					states.SetState(id, metrics.StateUnmounted)
				case <-ctx.Done():
				}
			}()
			// No counts or sizes: they are part of what the image encrypts, and this line
			// leaves the TEE with the container's logs (encfs inspect --key-file shows them).
			h := m.Image.Header()
			fmt.Fprintf(out, "mounted %s at %s (uuid %s, series %s, generation %d) in %d ms\n",
				blobio.Display(spec.Image), m.Point.Target, h.UUIDString(), h.SeriesHex(), h.Generation,
				time.Since(start).Milliseconds())
		}()
	}
	wg.Wait()
	var mounted []*Mounted
	for i := range live {
		if m := live[i].Load(); m != nil {
			mounted = append(mounted, m)
		}
	}
	if len(mounted) == 0 {
		return errors.Join(errs...)
	}
	if readyFile != "" && len(mounted) == len(specs) {
		var targets []string
		for _, m := range mounted {
			targets = append(targets, m.Point.Target)
		}
		if err := writeReadyFile(readyFile, strings.Join(targets, "\n")); err != nil {
			slog.Error("cannot write the ready file", "err", err)
		}
		defer os.Remove(readyFile)
	}
	waitForEnd(ctx, mounted)
	var unmountErrs []error
	for _, m := range mounted {
		if err := m.Unmount(); err != nil {
			unmountErrs = append(unmountErrs, err)
			continue
		}
		m.Spec.Log.Info("unmounted", "path", m.Point.Target)
	}
	return errors.Join(unmountErrs...)
}

// waitForEnd returns on a signal, or once every filesystem was unmounted from outside.
func waitForEnd(ctx context.Context, mounted []*Mounted) {
	gone := make(chan struct{}, len(mounted))
	for _, m := range mounted {
		go func() {
			select {
			case <-m.Point.Done():
				m.Spec.Log.Warn("the filesystem was unmounted from outside", "path", m.Point.Target)
				gone <- struct{}{}
			case <-ctx.Done():
			}
		}()
	}
	for range mounted {
		select {
		case <-ctx.Done():
			slog.Info("signal received: unmounting")
			return
		case <-gone:
		}
	}
}

func (m *Mounted) unmounted() bool {
	select {
	case <-m.Point.Done():
		return true
	default:
		return false
	}
}

func optionalID(flag string, v int64) (*uint32, error) {
	switch {
	case v == -1:
		return nil, nil
	case v < 0 || v > 1<<32-2:
		return nil, fmt.Errorf("%s %d out of range", flag, v)
	}
	id := uint32(v)
	return &id, nil
}
