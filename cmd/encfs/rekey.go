package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
)

// rekey re-encrypts an image under a new master key: the revocation step after a key was
// compromised (docs/OPERATIONS.md, "Revocation"), without the source directory.

// rekeyOptions are the flags of `encfs rekey`.
type rekeyOptions struct {
	keyFiles, newKeyFiles []string
	generation            uint64
	generationSet         bool // --generation was given
	signKeyFile           string
	source                *sourceFlags
}

func newRekeyCommand() *cobra.Command {
	opts := &rekeyOptions{}
	cmd := &cobra.Command{
		Use:   "rekey --key-file CURRENT [--new-key-file KEY ...] IMAGE OUT",
		Short: "Re-encrypt an image under a new master key, without its source directory",
		Long: `Read IMAGE (verifying every block), and write OUT with the same files under a fresh master
key and salt, the same series and the next generation (or --generation). OUT opens with the
--new-key-file keys (default: the --key-file keys). Nothing of the old image's keys opens OUT,
so after a compromise, rekey (or re-pack), then raise min_generation to OUT's generation or pin
its root or signer (docs/OPERATIONS.md, "Revocation"). A signed image must be signed again:
give --sign-key. OUT must not exist; it appears only when complete.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.generationSet = cmd.Flags().Changed("generation")
			return runRekey(cmd.Context(), opts, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.keyFiles, "key-file", nil, "a release key file that opens IMAGE")
	f.StringArrayVar(&opts.newKeyFiles, "new-key-file", nil, "release key file for OUT's keyslots (repeat, at most 8; default: the --key-file keys)")
	f.Uint64Var(&opts.generation, "generation", 0, "OUT's generation (default: IMAGE's plus one)")
	f.StringVar(&opts.signKeyFile, "sign-key", "", "Ed25519 signing key file of the publisher, to sign OUT")
	opts.source = addSourceFlags(cmd, "none")
	return cmd
}

// runRekey re-encrypts the image args[0] into args[1] under a new master key.
func runRekey(ctx context.Context, opts *rekeyOptions, args []string, stdout, stderr io.Writer) error {
	if _, err := os.Lstat(args[1]); err == nil {
		return fmt.Errorf("%s already exists: rekey writes a new image; choose another path", args[1])
	}
	im, err := openImage(ctx, args[0], opts.keyFiles, opts.source, image.Options{})
	if err != nil {
		return err
	}
	defer im.Close()
	h := im.Header()
	wo := image.WriterOptions{Series: &h.Series, Generation: h.Generation + 1}
	if opts.generationSet {
		if opts.generation <= h.Generation {
			return fmt.Errorf("--generation %d is not above the image's generation %d: raising it is what lets a deployment refuse the old image", opts.generation, h.Generation)
		}
		wo.Generation = opts.generation
	}
	newKeyFiles := opts.newKeyFiles
	if len(newKeyFiles) == 0 {
		newKeyFiles = opts.keyFiles
	}
	ks, zero, err := readKeyFiles(newKeyFiles)
	if err != nil {
		return err
	}
	defer zero()
	wo.ReleaseKeys = ks
	if opts.signKeyFile != "" {
		k, err := readSigningKey(opts.signKeyFile)
		if err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
		defer keys.Zero(k)
		wo.SignKey = k
	} else if h.Signed() {
		fmt.Fprintf(stderr, "warning: %s is signed by %s but no --sign-key was given: the new image is unsigned, and deployments that pin the signer will refuse it\n",
			blobio.Redact(args[0]), h.SignerHex())
	}
	tmp, err := os.CreateTemp(filepath.Dir(args[1]), "."+filepath.Base(args[1])+".partial-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", args[1], err)
	}
	nh, err := image.Rekey(ctx, im, tmp, wo)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Chmod(tmp.Name(), 0o644); err == nil {
			err = os.Rename(tmp.Name(), args[1])
		}
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rekey %s: %w", blobio.Redact(args[0]), err)
	}
	fmt.Fprintf(stdout, "rekeyed %s into %s: uuid %s  series %s  generation %d  integrity root %s\n",
		blobio.Redact(args[0]), args[1], nh.UUIDString(), nh.SeriesHex(), nh.Generation, nh.RootHex())
	return nil
}
