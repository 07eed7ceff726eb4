package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/metrics"
	"github.com/encfs/encfs/mount"
)

// MountSpec is one filesystem to mount. `encfs mount` builds one from its flags; a config
// file can list several, each with its own key provider.
type MountSpec struct {
	Image      string // local path or URL, as openSource takes it
	Mountpoint string
	// Keys returns the release keys to try. mountOne zeroes them once the image is open.
	Keys       func(ctx context.Context) ([][]byte, error)
	CacheBytes int64 // verified-plaintext cache of the image reader
	AllowOther bool
	UID, GID   *uint32 // owner override
	Publish    bool    // mount at a hidden directory and publish Mountpoint as a symlink to it
	ReadyFile  string  // written once the mount is live, removed at unmount
	Log        *slog.Logger
}

// Mounted is a live filesystem made by mountOne.
type Mounted struct {
	Spec  MountSpec
	Image *image.Image
	FS    *encfs.FS
	Point *mount.Point
}

// mountOne opens and authenticates the image (a wrong key fails here, before anything is
// mounted), mounts it, and writes the ready file.
func mountOne(ctx context.Context, spec MountSpec) (*Mounted, error) {
	if spec.Log == nil {
		spec.Log = slog.Default()
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
	src, err := openSource(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	im, err := image.Open(ctx, metrics.Count(src), ks, image.Options{CacheBytes: spec.CacheBytes})
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("%s: %w", spec.Image, err)
	}
	m := &Mounted{Spec: spec, Image: im}
	if m.FS, err = encfs.New(ctx, im, encfs.Options{UID: spec.UID, GID: spec.GID, Log: spec.Log}); err != nil {
		im.Close()
		return nil, err
	}
	m.Point, err = mount.Mount(m.FS, mount.Options{Mountpoint: spec.Mountpoint, Publish: spec.Publish,
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
	return m, nil
}

// Unmount removes the ready file, unmounts and closes the image.
func (m *Mounted) Unmount() error {
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
		allowOther, publish              bool
		uid, gid                         int64
		cacheSize, readyFile, metricAddr string
	)
	cmd := &cobra.Command{
		Use:   "mount --key-file KEY IMAGE MOUNTPOINT",
		Short: "Mount an image read-only with FUSE and serve it until SIGTERM or SIGINT",
		Long: `Mount IMAGE at MOUNTPOINT, read-only, in the foreground. One line is printed when the mount
is live; SIGTERM or SIGINT unmounts it (retrying while files are open, then detaching it lazily)
and exits 0. A stale mount left at MOUNTPOINT by a crashed run is removed first.

Every block is verified against the image's integrity tree before a byte of it is returned; a
block that fails gives EIO to the reads that need it, is logged, and counted in the metrics.

--publish-symlink mounts at a hidden directory beside MOUNTPOINT (.NAME.encfs-mnt) and then
atomically makes MOUNTPOINT a symlink to it, so consumers see the path only once it is ready.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cache, err := parseSize(cacheSize)
			if err != nil {
				return fmt.Errorf("--cache-size: %w", err)
			}
			spec := MountSpec{Image: args[0], Mountpoint: args[1], CacheBytes: cache, AllowOther: allowOther,
				Publish: publish, ReadyFile: readyFile, Log: slog.Default(),
				Keys: func(context.Context) ([][]byte, error) {
					ks, _, err := readKeyFiles(keyFiles)
					return ks, err
				}}
			if spec.UID, err = optionalID("--uid", uid); err != nil {
				return err
			}
			if spec.GID, err = optionalID("--gid", gid); err != nil {
				return err
			}
			return runMount(ctx, cmd, spec, metricAddr)
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
	f.StringVar(&metricAddr, "metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9090; a bare :PORT means localhost; default off)")
	rootCmd.AddCommand(cmd)
}

// runMount mounts spec, serves metrics if asked, and waits for a signal or an unmount from
// outside.
func runMount(ctx context.Context, cmd *cobra.Command, spec MountSpec, metricsAddr string) error {
	var live atomic.Pointer[Mounted]
	collector := metrics.NewCollector()
	if metricsAddr != "" {
		probes := metrics.Probes{
			Ready: func() bool { return live.Load() != nil },
			Healthy: func() error {
				if m := live.Load(); m != nil {
					select {
					case <-m.Point.Done():
						return errors.New("the filesystem is no longer mounted")
					default:
					}
				}
				return nil
			},
		}
		addr, err := metrics.Serve(ctx, metricsAddr, metrics.Handler(metrics.NewRegistry(collector), probes), spec.Log)
		if err != nil {
			return err
		}
		spec.Log.Info("serving metrics", "addr", addr.String())
	}
	start := time.Now()
	m, err := mountOne(ctx, spec)
	if err != nil {
		return err
	}
	collector.Add(m.Point.Target, metrics.For(m.FS))
	live.Store(m)
	sb := m.Image.Superblock()
	fmt.Fprintf(cmd.OutOrStdout(), "mounted %s at %s (%d files, %d directories, %d bytes; uuid %s, generation %d) in %d ms\n",
		spec.Image, m.Point.Target, sb.Files, sb.Dirs, sb.FileBytes, m.Image.Header().UUIDString(),
		m.Image.Header().Generation, time.Since(start).Milliseconds())
	select {
	case <-ctx.Done():
		spec.Log.Info("signal received: unmounting", "path", m.Point.Target)
	case <-m.Point.Done():
		spec.Log.Warn("the filesystem was unmounted from outside; exiting", "path", m.Point.Target)
	}
	if err := m.Unmount(); err != nil {
		return err
	}
	spec.Log.Info("unmounted", "path", m.Point.Target)
	return nil
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

// parseSize reads a byte count: a number with an optional K, M, G or T suffix (powers of
// 1024; "KiB", "MB" and the like mean the same).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			shift, t = 10*(i+1), t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 || v*float64(int64(1)<<shift) > 1<<62 {
		return 0, fmt.Errorf("%q is not a size (use a number with an optional K, M, G or T suffix)", s)
	}
	return int64(v * float64(int64(1)<<shift)), nil
}
