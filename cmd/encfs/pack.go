package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/pack"
)

func init() {
	var (
		keyFiles                              []string
		generation                            uint64
		saltHex, uuidStr, masterFile, created string
		workers                               int
		force                                 bool
	)
	cmd := &cobra.Command{
		Use:   "pack --key-file KEY [--key-file KEY2 ...] SRC_DIR IMAGE",
		Short: "Pack a directory into an encrypted, integrity-protected image",
		Long: `Pack SRC_DIR into IMAGE. Each --key-file adds a keyslot: any one of the keys opens the image.
File data and the index are encrypted with AES-256-XTS and covered by an integrity tree whose
root the header authenticates. Devices, sockets and fifos are skipped with a warning; an
unreadable file or a file that changes while being packed stops the pack, and no partial image
is left behind. An existing IMAGE is not replaced unless --force is given.

--salt, --uuid, --master-key-file and --created fix what is otherwise random or the current
time, for reproducible test images. Never fix all of them for two different trees in
production: see docs/FORMAT.md.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keyFiles) == 0 {
				return fmt.Errorf("at least one --key-file is required (create one with `encfs keygen --out FILE`)")
			}
			opts := pack.Options{WriterOptions: image.WriterOptions{Generation: generation, Workers: workers}}
			for _, kf := range keyFiles {
				k, err := keys.ReadKeyFile(kf)
				if err != nil {
					return err
				}
				defer keys.Zero(k)
				opts.ReleaseKeys = append(opts.ReleaseKeys, k)
			}
			if saltHex != "" {
				b, err := hex.DecodeString(saltHex)
				if err != nil || len(b) != 32 {
					return fmt.Errorf("--salt wants 64 hex digits (32 bytes)")
				}
				opts.Salt = (*[32]byte)(b)
			}
			if uuidStr != "" {
				u, err := uuid.Parse(uuidStr)
				if err != nil {
					return fmt.Errorf("--uuid: %v", err)
				}
				opts.UUID = (*[16]byte)(u[:])
			}
			if masterFile != "" {
				k, err := keys.ReadKeyFile(masterFile)
				if err != nil {
					return fmt.Errorf("--master-key-file: %w", err)
				}
				defer keys.Zero(k)
				opts.MasterKey = k
			}
			if created != "" {
				t, err := parseTime(created)
				if err != nil {
					return fmt.Errorf("--created: %v", err)
				}
				opts.Created = t
			}
			opts.NoReplace = !force
			_, statErr := os.Lstat(args[1])
			existed := statErr == nil
			if existed && !force {
				return fmt.Errorf("%s already exists: pass --force to replace it, or choose another name", args[1])
			}
			if term.IsTerminal(int(os.Stderr.Fd())) {
				// A quick walk first, so that progress has totals and an estimate of the time left.
				if tot, err := pack.Measure(cmd.Context(), args[0]); err == nil {
					bar := newPackProgress(os.Stderr, tot.Files, tot.Bytes)
					opts.Progress, opts.FileDone = bar.addBytes, bar.fileDone
					defer bar.finish()
				}
			}
			start := time.Now()
			res, err := pack.Pack(cmd.Context(), args[0], args[1], opts)
			if err != nil && cmd.Context().Err() != nil {
				kept := "no image was written"
				if existed {
					kept = "the existing " + args[1] + " is unchanged"
				}
				return fmt.Errorf("interrupted: %s and the partial file was removed; run the same command again to pack from the start", kept)
			}
			if errors.Is(err, pack.ErrExists) {
				return fmt.Errorf("%w: it appeared while packing; pass --force to replace it", err)
			}
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(cmd.OutOrStdout(), "packed %s: %d files, %d directories, %d symlinks, %d bytes in %.1fs (%.0f MB/s)\nimage %s  uuid %s  generation %d  integrity root %s\n",
				args[0], res.Index.Files, res.Index.Dirs, res.Index.Symlinks, res.Index.FileBytes, el.Seconds(),
				float64(res.Index.FileBytes)/1e6/el.Seconds(), args[1], res.Header.UUIDString(), res.Header.Generation, res.Header.RootHex())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keyFiles, "key-file", nil, "release key file (repeat to add keyslots, at most 8)")
	f.Uint64Var(&generation, "generation", 1, "generation number; deployments can require a minimum to refuse older images")
	f.StringVar(&saltHex, "salt", "", "fixed salt, 64 hex digits (tests and reproducible builds)")
	f.StringVar(&uuidStr, "uuid", "", "fixed image UUID (tests and reproducible builds)")
	f.StringVar(&masterFile, "master-key-file", "", "fixed 32-byte master key file (tests and reproducible builds)")
	f.StringVar(&created, "created", "", "fixed creation time, RFC 3339 or Unix seconds (tests and reproducible builds)")
	f.IntVar(&workers, "workers", 0, "encryption goroutines (default: one per core)")
	f.BoolVar(&force, "force", false, "replace IMAGE if it exists")
	rootCmd.AddCommand(cmd)
}

func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339, s)
}
