package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/profile"
	"github.com/encfs/encfs/sidecar"
)

// mountOptions are the flags of `encfs mount`.
type mountOptions struct {
	keyFiles                      []string
	allowOther, publish, logPaths bool
	allowKeyFileInTEE             bool
	uid, gid                      int64
	cacheSize, readyFile          string
	metricsAddr                   string
	configFile, configEnv         string
	pinRoot, pinSeries, pinSigner string
	minGeneration                 uint64
	prefetch, recordProfile       string
	source                        *sourceFlags
}

// fromConfig says whether the filesystems come from a configuration rather than arguments.
func (o *mountOptions) fromConfig() bool { return o.configFile != "" || o.configEnv != "" }

func newMountCommand() *cobra.Command {
	opts := &mountOptions{}
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
			if opts.fromConfig() {
				if len(args) != 0 {
					return errors.New("with --config or --config-env, give no IMAGE or MOUNTPOINT: the configuration names them")
				}
				return nil
			}
			if err := locationArgs(opts.source.loc, 2, 2)(cmd, args); err != nil {
				return fmt.Errorf("give IMAGE and MOUNTPOINT (IMAGE may come from --url-file or ENCFS_URL instead), or --config FILE / --config-env NAME: %w", err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.fromConfig() {
				if err := noImageFlags(cmd); err != nil {
					return err
				}
			}
			return runMount(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.keyFiles, "key-file", nil, "release key file (repeat to try several)")
	f.BoolVar(&opts.allowOther, "allow-other", os.Geteuid() == 0, "let other users read the mount (default on as root)")
	f.Int64Var(&opts.uid, "uid", -1, "report every file as owned by this uid (default: as packed)")
	f.Int64Var(&opts.gid, "gid", -1, "report every file as owned by this gid (default: as packed)")
	f.StringVar(&opts.cacheSize, "cache-size", "256M", "verified-plaintext cache size (e.g. 64M, 1G)")
	f.StringVar(&opts.readyFile, "ready-file", "", "write the mount path to this file once the mount is live")
	f.BoolVar(&opts.publish, "publish-symlink", false, "mount at a hidden directory and publish MOUNTPOINT as a symlink to it")
	f.StringVar(&opts.pinRoot, "pinned-root", "", "refuse any image whose integrity root is not this (hex, as encfs inspect prints it)")
	f.Uint64Var(&opts.minGeneration, "min-generation", 0, "refuse images of the series with a lower generation number (needs --series)")
	f.StringVar(&opts.pinSeries, "series", "", "refuse images of any other series (hex, as encfs inspect prints it)")
	f.StringVar(&opts.pinSigner, "pinned-signer", "", "accept only images of the series signed by this publisher key (hex; needs --series)")
	f.BoolVar(&opts.logPaths, "log-paths", false, "debugging: name the file path and offset inside the image in error logs (names and sizes are otherwise kept out of logs, which leave the TEE)")
	f.BoolVar(&opts.allowKeyFileInTEE, "dev-allow-key-file", false, "development: accept key_file in a configuration inside an SEV-SNP environment")
	f.StringVar(&opts.configFile, "config", "", "mount every filesystem of this JSON configuration file")
	f.StringVar(&opts.configEnv, "config-env", "", "mount every filesystem of the base64 JSON configuration in this environment variable (e.g. EncfsSideCarArgs)")
	f.StringVar(&opts.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9090; a bare :PORT means localhost; default off)")
	f.StringVar(&opts.prefetch, "prefetch", "auto", "what a remote image's background fetch brings: auto (the whole image when it fits the memory and disk caches; first the files of the image's access profile, if it has one), all, none, or an access profile FILE (its files first, in order, then as auto)")
	f.StringVar(&opts.recordProfile, "record-profile", "", "write the order in which files are first read (image inode numbers, no names) to this file, for --prefetch FILE or encfs pack --profile")
	opts.source = addSourceFlags(cmd, blobio.AutoDiskCache)
	return cmd
}

// runMount mounts the filesystems of a configuration, or the one IMAGE MOUNTPOINT of args, and
// serves them until ctx ends.
func runMount(ctx context.Context, opts *mountOptions, args []string, out io.Writer) error {
	if opts.fromConfig() {
		c, err := loadConfig(opts.configFile, opts.configEnv)
		if err != nil {
			return err
		}
		if err := sidecar.CheckConfigForTEE(c, sidecar.TEERules{AllowKeyFile: opts.allowKeyFileInTEE}, slog.Default()); err != nil {
			return err
		}
		specs, err := sidecar.SpecsFromConfig(c, sidecar.Options{LogPaths: opts.logPaths})
		if err != nil {
			return err
		}
		warnLogPaths(opts.logPaths)
		return sidecar.Run(ctx, out, specs, sidecar.RunOptions{MetricsAddr: opts.metricsAddr, ReadyFile: opts.readyFile, Advice: advice})
	}
	args, err := opts.source.withLocation(args, 2)
	if err != nil {
		return err
	}
	cache, err := config.ParseByteSize(opts.cacheSize)
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	so, err := opts.source.options()
	if err != nil {
		return err
	}
	if err := checkPrefetch(opts.prefetch); err != nil {
		return err
	}
	spec := sidecar.MountSpec{Image: args[0], Mountpoint: args[1], Source: so, CacheBytes: int64(cache), RequestTimeout: opts.source.readTimeout, Prefetch: opts.prefetch, RecordProfile: opts.recordProfile,
		AllowOther: opts.allowOther, Publish: opts.publish, ReadyFile: opts.readyFile, Log: slog.Default(), LogPaths: opts.logPaths,
		Pin: image.Pin{Root: opts.pinRoot, Series: opts.pinSeries, MinGeneration: opts.minGeneration, Signer: opts.pinSigner},
		Keys: func(context.Context) ([][]byte, error) {
			ks, _, err := readKeyFiles(opts.keyFiles)
			return ks, err
		}}
	if err := spec.Pin.Validate(); err != nil {
		return err
	}
	if spec.UID, err = optionalID("--uid", opts.uid); err != nil {
		return err
	}
	if spec.GID, err = optionalID("--gid", opts.gid); err != nil {
		return err
	}
	warnLogPaths(opts.logPaths)
	return sidecar.Run(ctx, out, []sidecar.MountSpec{spec}, sidecar.RunOptions{MetricsAddr: opts.metricsAddr, Advice: advice})
}

func checkPrefetch(v string) error {
	switch v {
	case "auto", "all", "none":
		return nil
	}
	if _, err := profile.Load(v); err != nil {
		return fmt.Errorf("--prefetch %q: want auto, all, none or an access profile file: %w", v, err)
	}
	return nil
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
