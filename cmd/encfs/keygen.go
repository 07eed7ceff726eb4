package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
)

// keygenOptions are the flags of `encfs keygen`.
type keygenOptions struct {
	out     string
	signing bool
}

func newKeygenCommand() *cobra.Command {
	var opts keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen [--signing-key] --out FILE",
		Short: "Create a random 32-byte release key file, or a publisher signing key (mode 0600)",
		Long: `Create a release key: 32 random bytes written raw to FILE with mode 0600, the same format
as the reference sidecar's keyfile.bin. An existing file is never overwritten.

With --signing-key the 32 bytes are the seed of an Ed25519 publisher key for
encfs pack --sign-key; keygen prints its public key, the value deployments pin as
pinned_signer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeygen(opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.out, "out", "", "path of the new key file")
	cmd.Flags().BoolVar(&opts.signing, "signing-key", false, "create an Ed25519 publisher signing key instead of a release key")
	return cmd
}

// runKeygen writes a new key file.
func runKeygen(opts keygenOptions, stdout io.Writer) error {
	if opts.out == "" {
		return errors.New("--out FILE is required")
	}
	key := make([]byte, keys.KeySize)
	defer keys.Zero(key)
	rand.Read(key)
	f, err := os.OpenFile(opts.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: keygen never overwrites a key; choose another path or delete the old key deliberately", opts.out)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(opts.out)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(opts.out)
		return err
	}
	if opts.signing {
		pub := ed25519.NewKeyFromSeed(key).Public().(ed25519.PublicKey)
		fmt.Fprintf(stdout, "wrote %s (signing key; public key %s)\n", opts.out, hex.EncodeToString(pub))
		return nil
	}
	fmt.Fprintf(stdout, "wrote %s (key fingerprint %s)\n", opts.out, image.Fingerprint(key))
	return nil
}
