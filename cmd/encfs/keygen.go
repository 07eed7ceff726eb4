package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
)

func init() {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create a random 32-byte release key file (mode 0600)",
		Long: `Create a release key: 32 random bytes written raw to FILE with mode 0600, the same format
as the reference sidecar's keyfile.bin. An existing file is never overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			key := make([]byte, keys.KeySize)
			defer keys.Zero(key)
			rand.Read(key)
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists: keygen never overwrites a key; choose another path or delete the old key deliberately", out)
			}
			if err != nil {
				return err
			}
			if _, err := f.Write(key); err != nil {
				f.Close()
				os.Remove(out)
				return err
			}
			if err := f.Close(); err != nil {
				os.Remove(out)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (key fingerprint %s)\n", out, image.Fingerprint(key))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "path of the new key file")
	rootCmd.AddCommand(cmd)
}
