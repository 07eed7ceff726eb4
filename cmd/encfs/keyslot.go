package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
)

// key add-slot / remove-slot rewrite an image's header only: rotating a release key takes
// milliseconds whatever the image size.

func init() {
	var current, newKey string
	add := &cobra.Command{
		Use:   "add-slot --key-file CURRENT --new-key-file NEW IMAGE",
		Short: "Let another release key open a local image (rewrites the header only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cur, err := keys.ReadKeyFile(current)
			if err != nil {
				return err
			}
			defer keys.Zero(cur)
			nk, err := keys.ReadKeyFile(newKey)
			if err != nil {
				return err
			}
			defer keys.Zero(nk)
			f, err := os.OpenFile(args[0], os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := image.AddKeyslot(cmd.Context(), f, cur, nk); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: added a keyslot for key fingerprint %s\n", args[0], image.Fingerprint(nk))
			return nil
		},
	}
	add.Flags().StringVar(&current, "key-file", "", "a key file that opens the image now")
	add.Flags().StringVar(&newKey, "new-key-file", "", "the key file to add")
	add.MarkFlagRequired("key-file")
	add.MarkFlagRequired("new-key-file")

	var rmCurrent, fingerprint string
	remove := &cobra.Command{
		Use:   "remove-slot --key-file CURRENT --fingerprint FP IMAGE",
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
			cur, err := keys.ReadKeyFile(rmCurrent)
			if err != nil {
				return err
			}
			defer keys.Zero(cur)
			f, err := os.OpenFile(args[0], os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := image.RemoveKeyslot(cmd.Context(), f, cur, fingerprint); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: removed the keyslot for key fingerprint %s\n", args[0], fingerprint)
			fmt.Fprintf(cmd.OutOrStdout(), "note: this does not revoke the key: a holder of it may know the image's master key, which is unchanged.\n"+
				"To revoke it, run encfs rekey and raise min_generation (or pin the new root or a signer); see docs/OPERATIONS.md, \"Revocation\".\n")
			return nil
		},
	}
	remove.Flags().StringVar(&rmCurrent, "key-file", "", "a key file that opens the image (may be the one removed)")
	remove.Flags().StringVar(&fingerprint, "fingerprint", "", "fingerprint of the keyslot to remove (16 hex digits)")
	remove.MarkFlagRequired("key-file")
	remove.MarkFlagRequired("fingerprint")

	keyCmd.AddCommand(add, remove)
}
