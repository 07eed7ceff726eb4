package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/location"
	"github.com/encfs/encfs/blockdev"
	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/sidecar"
	"github.com/encfs/encfs/volume"
)

// A volume is a read-write, encrypted and authenticated block device in a local file or an
// Azure page blob, mounted through a loop device with ext4 (or xfs) on it (docs/VOLUME.md).
// `encfs volume create` makes the filesystem right away, through the same device path a mount
// uses, so that every mount finds it ready and no mount ever formats a volume by itself.

func newVolumeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Read-write encrypted volumes: create, mount, grow, inspect, verify",
		Long: `A volume is a read-write filesystem (ext4 by default, or xfs) on an encrypted, authenticated
block device kept in a local file or an Azure page blob. Every block is encrypted and
authenticated; a block modified, moved, replayed or taken from another volume gives EIO, never
wrong bytes. One writer at a time: a local file is locked (flock), a page blob leased.`,
	}
	cmd.AddCommand(newVolumeCreateCommand(), newVolumeMountCommand(), newVolumeGrowCommand(),
		newVolumeInspectCommand(), newVolumeVerifyCommand())
	return cmd
}

// volumeFlags are the flags of every volume command that reaches a store.
type volumeFlags struct {
	auth, clientID     string
	timeout, leaseWait time.Duration
	loc                *locationFlags
}

func addVolumeFlags(cmd *cobra.Command) *volumeFlags {
	vf := &volumeFlags{loc: addLocationFlags(cmd)}
	f := cmd.Flags()
	f.StringVar(&vf.auth, "auth", "auto", "how to reach a page blob: auto, sas, identity or connection-string")
	f.StringVar(&vf.clientID, "client-id", "", "client id of the user-assigned managed identity (or workload identity) for Azure")
	f.DurationVar(&vf.timeout, "storage-timeout", 60*time.Second, "give up on one storage operation after this long, retries included (the I/O fails with EIO)")
	return vf
}

// addLeaseWait adds --lease-wait to a command that opens a volume for writing.
func (vf *volumeFlags) addLeaseWait(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&vf.leaseWait, "lease-wait", 0,
		"wait this long for another writer's lease on a page blob to end before giving up (a writer that was killed holds it up to 60 s)")
}

// blob returns how to reach a page blob.
func (vf *volumeFlags) blob() (location.Options, error) {
	var o location.Options
	var err error
	if o.Auth, err = azure.ParseAuth(vf.auth); err != nil {
		return o, fmt.Errorf("--auth: %w", err)
	}
	o.ClientID = vf.clientID
	if o.ConnectionString, err = vf.loc.connectionString(); err != nil {
		return o, err
	}
	o.Retry.Budget = vf.timeout
	return o, nil
}

// openStore opens the store at target (a local file or a page blob URL) with the command's
// storage flags: exclusively unless readOnly.
func (vf *volumeFlags) openStore(ctx context.Context, target string, readOnly bool) (volume.Store, error) {
	blob, err := vf.blob()
	if err != nil {
		return nil, err
	}
	return sidecar.OpenVolumeStore(ctx, target, sidecar.StoreOptions{ReadOnly: readOnly, Blob: blob, LeaseWait: vf.leaseWait})
}

// openVolume opens the volume at target with the key in keyFile, and returns it with the key's
// fingerprint. Closing the volume closes its store.
func (vf *volumeFlags) openVolume(ctx context.Context, target, keyFile string, readOnly bool) (*volume.Volume, string, error) {
	key, err := oneKey(keyFile)
	if err != nil {
		return nil, "", err
	}
	defer keys.Zero(key)
	s, err := vf.openStore(ctx, target, readOnly)
	if err != nil {
		return nil, "", err
	}
	v, err := volume.Open(ctx, s, [][]byte{key}, volume.OpenOptions{ReadOnly: readOnly, Log: slog.Default()})
	if err != nil {
		s.Close()
		return nil, "", fmt.Errorf("%s: %w", blobio.Display(target), err)
	}
	return v, volume.Fingerprint(key), nil
}

// oneKey reads exactly one key file.
func oneKey(keyFile string) ([]byte, error) {
	if keyFile == "" {
		return nil, errors.New("--key-file is required")
	}
	return keys.ReadKeyFile(keyFile)
}

// ---- create ----

type volumeCreateOptions struct {
	keyFile, size, fs, label string
	preallocate              bool
	vf                       *volumeFlags
}

func newVolumeCreateCommand() *cobra.Command {
	opts := &volumeCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create --key-file KEY --size SIZE [--fs ext4|xfs] TARGET",
		Short: "Create a volume (a local file or a page blob) and make a filesystem on it",
		Long: `Create TARGET, a local file or an Azure page blob URL that must not exist yet, holding a new
volume of SIZE bytes that KEY opens, and make a filesystem on it (ext4 by default, or xfs)
through the same FUSE file and loop device a mount uses. Needs root (loop devices).

The file or blob is sparse: it grows to about SIZE as blocks are written (up to twice SIZE: each
block has a shadow copy for atomic commits). --preallocate writes a local file whole at once
instead (about twice SIZE on disk, and a second or so per GiB to write): random writes are then
faster, as no first write to a block's slot allocates. A page blob needs a credential that can
create and write it (a SAS with sp=cw, a connection string, or an identity with Storage Blob
Data Contributor).`,
		Args: func(cmd *cobra.Command, args []string) error { return locationArgs(opts.vf.loc, 1, 1)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, _, err := opts.vf.loc.split(args, 1)
			if err != nil {
				return err
			}
			return runVolumeCreate(cmd.Context(), opts, loc, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.keyFile, "key-file", "", "the release key that opens the volume")
	f.StringVar(&opts.size, "size", "", "volume size, e.g. 10G (a multiple of 4 KiB)")
	f.StringVar(&opts.fs, "fs", "ext4", "filesystem: ext4 or xfs (xfs needs 300 MiB at least)")
	f.StringVar(&opts.label, "label", "", "free text stored unencrypted in the header, for operators")
	f.BoolVar(&opts.preallocate, "preallocate", false, "write a local file's whole store now (about twice SIZE on disk) for faster random writes")
	cmd.MarkFlagRequired("key-file")
	cmd.MarkFlagRequired("size")
	opts.vf = addVolumeFlags(cmd)
	return cmd
}

func runVolumeCreate(ctx context.Context, opts *volumeCreateOptions, target string, out io.Writer) error {
	size, err := config.ParseByteSize(opts.size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	if size <= 0 || size%4096 != 0 {
		return fmt.Errorf("--size %s: want a positive multiple of 4 KiB, such as 10G", opts.size)
	}
	if !slices.Contains(blockdev.Filesystems, opts.fs) {
		return fmt.Errorf("--fs %s: want one of %s", opts.fs, strings.Join(blockdev.Filesystems, ", "))
	}
	key, err := oneKey(opts.keyFile)
	if err != nil {
		return err
	}
	defer keys.Zero(key)
	blob, err := opts.vf.blob()
	if err != nil {
		return err
	}
	in, err := sidecar.CreateVolume(ctx, target, key, sidecar.CreateVolumeOptions{Size: int64(size), FS: opts.fs,
		Label: opts.label, Blob: blob, Log: slog.Default(), Preallocate: opts.preallocate})
	if err != nil {
		return fmt.Errorf("create volume %s: %w", blobio.Display(target), err)
	}
	fmt.Fprintf(out, "created volume %s: %d bytes, %s, uuid %s, generation %d, keyslot %s\n",
		blobio.Display(target), in.Size, opts.fs, in.UUID, in.Generation, volume.Fingerprint(key))
	return nil
}

// ---- mount ----

type volumeMountOptions struct {
	keyFile, fs, readyFile, metricsAddr string
	readOnly                            bool
	minGeneration                       uint64
	vf                                  *volumeFlags
}

func newVolumeMountCommand() *cobra.Command {
	opts := &volumeMountOptions{}
	cmd := &cobra.Command{
		Use:   "mount --key-file KEY [--read-only] TARGET MOUNTPOINT",
		Short: "Mount a volume read-write and serve it until SIGTERM or SIGINT",
		Long: `Mount the filesystem of the volume TARGET (a local file or a page blob URL) at MOUNTPOINT, in
the foreground, read-write unless --read-only. Needs root (loop devices, mount).

A writer holds the store exclusively for as long as it runs (flock on a local file, the lease
on a page blob); a second writer is refused with a message naming the holder. The filesystem's
commits (journal commits, fsync) are the volume's commits: what was fsync'd survives a crash of
this process or of the storage connection.

SIGTERM or SIGINT syncs and unmounts the filesystem, detaches the loop device, commits the
volume, unmounts the FUSE file and releases the lock or lease, then exits 0.`,
		Args: func(cmd *cobra.Command, args []string) error { return locationArgs(opts.vf.loc, 2, 2)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, rest, err := opts.vf.loc.split(args, 2)
			if err != nil {
				return err
			}
			return runVolumeMount(cmd.Context(), opts, loc, rest[0], cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.keyFile, "key-file", "", "the release key")
	f.BoolVar(&opts.readOnly, "read-only", false, "mount read-only, without taking the writer's lock or lease")
	f.StringVar(&opts.fs, "fs", "", "filesystem type (default: detected, ext4 or xfs)")
	f.Uint64Var(&opts.minGeneration, "min-generation", 0, "refuse a volume whose generation is lower (an older copy of it being served)")
	f.StringVar(&opts.readyFile, "ready-file", "", "write the mount path to this file once the mount is live")
	f.StringVar(&opts.metricsAddr, "metrics-addr", "", "serve /healthz and /readyz (and Prometheus /metrics) on this address")
	cmd.MarkFlagRequired("key-file")
	opts.vf = addVolumeFlags(cmd)
	opts.vf.addLeaseWait(cmd)
	return cmd
}

func runVolumeMount(ctx context.Context, opts *volumeMountOptions, target, mountpoint string, out io.Writer) error {
	blob, err := opts.vf.blob()
	if err != nil {
		return err
	}
	spec := sidecar.MountSpec{Image: target, Mountpoint: mountpoint, Source: sidecar.SourceOptions{Blob: blob},
		ReadyFile: opts.readyFile, Log: slog.Default(),
		Volume: &sidecar.VolumeOptions{ReadOnly: opts.readOnly, MinGeneration: opts.minGeneration, FS: opts.fs, LeaseWait: opts.vf.leaseWait},
		Keys: func(context.Context) ([][]byte, error) {
			k, err := oneKey(opts.keyFile)
			if err != nil {
				return nil, err
			}
			return [][]byte{k}, nil
		}}
	return sidecar.Run(ctx, out, []sidecar.MountSpec{spec}, sidecar.RunOptions{MetricsAddr: opts.metricsAddr, Advice: advice})
}

// ---- grow ----

type volumeGrowOptions struct {
	keyFile, size string
	vf            *volumeFlags
}

func newVolumeGrowCommand() *cobra.Command {
	opts := &volumeGrowOptions{}
	cmd := &cobra.Command{
		Use:   "grow --key-file KEY --size SIZE TARGET",
		Short: "Grow an unmounted volume and its filesystem to SIZE",
		Long: `Grow the volume TARGET to SIZE bytes and its filesystem with it (resize2fs for ext4,
xfs_growfs for xfs, on a private mount). The volume must not be mounted: growing takes the
writer's lock or lease. Volumes do not shrink.`,
		Args: func(cmd *cobra.Command, args []string) error { return locationArgs(opts.vf.loc, 1, 1)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, _, err := opts.vf.loc.split(args, 1)
			if err != nil {
				return err
			}
			return runVolumeGrow(cmd.Context(), opts, loc, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.keyFile, "key-file", "", "the release key")
	cmd.Flags().StringVar(&opts.size, "size", "", "the new size, e.g. 20G (a multiple of 4 KiB)")
	cmd.MarkFlagRequired("key-file")
	cmd.MarkFlagRequired("size")
	opts.vf = addVolumeFlags(cmd)
	opts.vf.addLeaseWait(cmd)
	return cmd
}

func runVolumeGrow(ctx context.Context, opts *volumeGrowOptions, target string, out io.Writer) error {
	size, err := config.ParseByteSize(opts.size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	v, _, err := opts.vf.openVolume(ctx, target, opts.keyFile, false)
	if err != nil {
		return err
	}
	old := v.Size()
	if int64(size) < old {
		v.Close(ctx)
		return fmt.Errorf("--size %s is smaller than the volume (%d bytes): volumes do not shrink", opts.size, old)
	}
	if err := v.Grow(ctx, int64(size)); err != nil {
		v.Close(ctx)
		return fmt.Errorf("grow %s: %w", blobio.Display(target), err)
	}
	// The filesystem grows online, on a private mount that sees the new device size.
	err = blockdev.GrowFS(ctx, v)
	if err := errors.Join(err, v.Close(ctx)); err != nil {
		return fmt.Errorf("grow the filesystem of %s (the volume itself is %d bytes now; run grow again): %w", blobio.Display(target), size, err)
	}
	fmt.Fprintf(out, "grew volume %s from %d to %d bytes, and its filesystem\n", blobio.Display(target), old, int64(size))
	return nil
}

// ---- inspect ----

type volumeInspectOptions struct {
	keyFile string
	vf      *volumeFlags
}

func newVolumeInspectCommand() *cobra.Command {
	opts := &volumeInspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [--key-file KEY] TARGET",
		Short: "Print a volume's header: without a key unauthenticated, with one authenticated",
		Args:  func(cmd *cobra.Command, args []string) error { return locationArgs(opts.vf.loc, 1, 1)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, _, err := opts.vf.loc.split(args, 1)
			if err != nil {
				return err
			}
			return runVolumeInspect(cmd.Context(), opts, loc, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.keyFile, "key-file", "", "a release key: authenticate the header before printing it")
	opts.vf = addVolumeFlags(cmd)
	return cmd
}

func runVolumeInspect(ctx context.Context, opts *volumeInspectOptions, target string, out io.Writer) error {
	if opts.keyFile == "" {
		s, err := opts.vf.openStore(ctx, target, true)
		if err != nil {
			return err
		}
		defer s.Close()
		pi, err := volume.Inspect(ctx, s)
		if err != nil {
			return fmt.Errorf("%s: %w", blobio.Display(target), err)
		}
		fmt.Fprintf(out, "volume %s (UNAUTHENTICATED: read without a key; anyone who can write the store can change these)\n", blobio.Display(target))
		printVolumeInfo(out, pi.UUID, pi.Generation, pi.Size, pi.BlockSize, pi.Label, pi.Created, pi.Keyslots, pi.StoreSize)
		if pi.OtherGeneration != 0 {
			fmt.Fprintf(out, "other header copy: generation %d\n", pi.OtherGeneration)
		}
		return nil
	}
	v, fingerprint, err := opts.vf.openVolume(ctx, target, opts.keyFile, true)
	if err != nil {
		return err
	}
	defer v.Close(ctx)
	in := v.Info()
	fmt.Fprintf(out, "volume %s (header authenticated with key %s)\n", blobio.Display(target), fingerprint)
	printVolumeInfo(out, in.UUID, in.Generation, in.Size, in.BlockSize, in.Label, in.Created, in.Keyslots, in.StoreSize)
	if fs, err := blockdev.Detect(ctx, v); err == nil {
		fmt.Fprintf(out, "filesystem: %s\n", fs)
	} else {
		fmt.Fprintf(out, "filesystem: none found (%v)\n", err)
	}
	return nil
}

func printVolumeInfo(out io.Writer, uuid string, gen uint64, size int64, block int, label string, created time.Time, slots []string, storeSize int64) {
	fmt.Fprintf(out, "uuid:       %s\n", uuid)
	fmt.Fprintf(out, "generation: %d\n", gen)
	fmt.Fprintf(out, "size:       %d bytes (%d-byte blocks)\n", size, block)
	if label != "" {
		fmt.Fprintf(out, "label:      %q\n", label)
	}
	fmt.Fprintf(out, "created:    %s\n", created.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "store size: %d bytes (sparse)\n", storeSize)
	for _, fp := range slots {
		fmt.Fprintf(out, "keyslot:    %s\n", fp)
	}
}

// ---- verify ----

type volumeVerifyOptions struct {
	keyFile string
	quiet   bool
	vf      *volumeFlags
}

func newVolumeVerifyCommand() *cobra.Command {
	opts := &volumeVerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify --key-file KEY TARGET",
		Short: "Check every written block of an unmounted volume against its integrity tree",
		Long: `Read the whole volume TARGET without FUSE and check every written block and tree node
against the committed header. Exit status 0: every block verifies; 1: it names the first
failures. A mounted volume can be verified too (verify only reads), but a writer's commits
may race with it.`,
		Args: func(cmd *cobra.Command, args []string) error { return locationArgs(opts.vf.loc, 1, 1)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, _, err := opts.vf.loc.split(args, 1)
			if err != nil {
				return err
			}
			return runVolumeVerify(cmd.Context(), opts, loc, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&opts.keyFile, "key-file", "", "the release key")
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "no progress bar")
	cmd.MarkFlagRequired("key-file")
	opts.vf = addVolumeFlags(cmd)
	return cmd
}

func runVolumeVerify(ctx context.Context, opts *volumeVerifyOptions, target string, out, errOut io.Writer) error {
	key, err := oneKey(opts.keyFile)
	if err != nil {
		return err
	}
	defer keys.Zero(key)
	s, err := opts.vf.openStore(ctx, target, true)
	if err != nil {
		return err
	}
	defer s.Close()
	var progress func(done, total int64)
	if !opts.quiet {
		var bar interface{ Set64(int64) error }
		progress = func(done, total int64) {
			if bar == nil {
				bar = newProgressTo(errOut, total, "verifying")
			}
			_ = bar.Set64(done)
		}
	}
	in, err := volume.Verify(ctx, s, [][]byte{key}, progress)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("%s: %w", blobio.Display(target), err)}
	}
	fmt.Fprintf(out, "volume %s verifies: uuid %s, generation %d, %d bytes\n", blobio.Display(target), in.UUID, in.Generation, in.Size)
	return nil
}

// isVolume reports whether the local file at path starts with the volume magic (else it is
// taken for an image).
func isVolume(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b := make([]byte, len(volume.Magic))
	if _, err := io.ReadFull(f, b); err != nil {
		return false, nil // too short for either; the image code explains
	}
	return string(b) == volume.Magic, nil
}
