package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/sidecar"
	"github.com/encfs/encfs/volume"
)

// key add-slot / remove-slot rewrite an image's or a volume's header only: rotating a release
// key takes milliseconds whatever the size. A local file is a volume if it starts with the
// volume magic, else an image; a URL is a volume's page blob (a remote image is changed by
// changing the local image and uploading it again).

// isVolumeTarget says whether target is a volume.
func isVolumeTarget(target string) (bool, error) {
	if blobio.IsRemote(target) {
		return true, nil
	}
	return isVolume(target)
}

// withVolumeStore runs fn on the volume store at target, opened as its writer (so not while
// the volume is mounted), with the connection string from the environment.
func withVolumeStore(ctx context.Context, target string, fn func(volume.Store) error) error {
	s, err := sidecar.OpenVolumeStore(ctx, target, sidecar.StoreOptions{})
	if err != nil {
		return err
	}
	return errors.Join(fn(s), s.Flush(ctx), s.Close())
}

// keyAddSlotOptions are the flags of `encfs key add-slot`.
type keyAddSlotOptions struct {
	current, newKey string
}

func newKeyAddSlotCommand() *cobra.Command {
	opts := &keyAddSlotOptions{}
	cmd := &cobra.Command{
		Use:   "add-slot --key-file CURRENT --new-key-file NEW IMAGE|VOLUME",
		Short: "Let another release key open a local image or a volume (rewrites the header only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyAddSlot(cmd.Context(), opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.current, "key-file", "", "a key file that opens the image now")
	cmd.Flags().StringVar(&opts.newKey, "new-key-file", "", "the key file to add")
	cmd.MarkFlagRequired("key-file")
	cmd.MarkFlagRequired("new-key-file")
	return cmd
}

// runKeyAddSlot adds a keyslot for opts.newKey to the local image img.
func runKeyAddSlot(ctx context.Context, opts *keyAddSlotOptions, img string, stdout io.Writer) error {
	cur, err := keys.ReadKeyFile(opts.current)
	if err != nil {
		return err
	}
	defer keys.Zero(cur)
	nk, err := keys.ReadKeyFile(opts.newKey)
	if err != nil {
		return err
	}
	defer keys.Zero(nk)
	if vol, err := isVolumeTarget(img); err != nil {
		return err
	} else if vol {
		err := withVolumeStore(ctx, img, func(s volume.Store) error { return volume.AddKeyslot(ctx, s, cur, nk) })
		if err != nil {
			return fmt.Errorf("%s: %w", blobio.Display(img), err)
		}
		fmt.Fprintf(stdout, "%s: added a keyslot for key fingerprint %s\n", blobio.Display(img), volume.Fingerprint(nk))
		return nil
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := image.AddKeyslot(ctx, f, cur, nk); err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	fmt.Fprintf(stdout, "%s: added a keyslot for key fingerprint %s\n", img, image.Fingerprint(nk))
	return nil
}

// keyRemoveSlotOptions are the flags of `encfs key remove-slot`.
type keyRemoveSlotOptions struct {
	current, fingerprint string
}

func newKeyRemoveSlotCommand() *cobra.Command {
	opts := &keyRemoveSlotOptions{}
	cmd := &cobra.Command{
		Use:   "remove-slot --key-file CURRENT --fingerprint FP IMAGE|VOLUME",
		Short: "Stop a release key from opening this copy of a local image (rewrites the header only; revokes nothing)",
		Long: `Remove the keyslot with the given key fingerprint (see encfs inspect). The last keyslot
cannot be removed.

This does NOT revoke the key. Whoever held it may already know the image's master key, which
does not change here: with it they can read this image and build other images that the
remaining keys open. Copies of the image made before also still accept the removed key. To
revoke a key after a compromise, re-encrypt with encfs rekey (or pack again), then raise
min_generation to the new generation or pin the new root or a signer (docs/OPERATIONS.md,
"Revocation").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyRemoveSlot(cmd.Context(), opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.current, "key-file", "", "a key file that opens the image (may be the one removed)")
	cmd.Flags().StringVar(&opts.fingerprint, "fingerprint", "", "fingerprint of the keyslot to remove (16 hex digits)")
	cmd.MarkFlagRequired("key-file")
	cmd.MarkFlagRequired("fingerprint")
	return cmd
}

// runKeyRemoveSlot removes the keyslot of opts.fingerprint from the local image img.
func runKeyRemoveSlot(ctx context.Context, opts *keyRemoveSlotOptions, img string, stdout io.Writer) error {
	cur, err := keys.ReadKeyFile(opts.current)
	if err != nil {
		return err
	}
	defer keys.Zero(cur)
	if vol, err := isVolumeTarget(img); err != nil {
		return err
	} else if vol {
		err := withVolumeStore(ctx, img, func(s volume.Store) error { return volume.RemoveKeyslot(ctx, s, cur, opts.fingerprint) })
		if err != nil {
			return fmt.Errorf("%s: %w", blobio.Display(img), err)
		}
		fmt.Fprintf(stdout, "%s: removed the keyslot for key fingerprint %s\n", blobio.Display(img), opts.fingerprint)
		fmt.Fprintf(stdout, "note: this does not revoke the key: a holder of it may know the volume's master key, which is unchanged.\n")
		return nil
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := image.RemoveKeyslot(ctx, f, cur, opts.fingerprint); err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	fmt.Fprintf(stdout, "%s: removed the keyslot for key fingerprint %s\n", img, opts.fingerprint)
	fmt.Fprintf(stdout, "note: this does not revoke the key: a holder of it may know the image's master key, which is unchanged.\n"+
		"To revoke it, run encfs rekey and raise min_generation (or pin the new root or a signer); see docs/OPERATIONS.md, \"Revocation\".\n")
	return nil
}
