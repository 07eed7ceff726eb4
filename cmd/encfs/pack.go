package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/pack"
	"github.com/encfs/encfs/profile"
	"github.com/encfs/encfs/sidecar"
)

// packOptions are the flags of `encfs pack`.
type packOptions struct {
	keyFiles                         []string
	generation                       uint64
	generationSet                    bool // --generation was given
	seriesHex, previous, signKeyFile string
	uuidStr, created                 string
	workers                          int
	force                            bool
	profile                          string
}

func newPackCommand() *cobra.Command {
	opts := &packOptions{}
	cmd := &cobra.Command{
		Use:   "pack --key-file KEY [--key-file KEY2 ...] SRC_DIR IMAGE",
		Short: "Pack a directory into an encrypted, integrity-protected image",
		Long: `Pack SRC_DIR into IMAGE. Each --key-file adds a keyslot: any one of the keys opens the image.
File data and the index are encrypted with AES-256-XTS and covered by an integrity tree whose
root the header authenticates. Devices, sockets and fifos are skipped with a warning; an
unreadable file or a file that changes while being packed stops the pack, and no partial image
is left behind. An existing IMAGE is not replaced unless --force is given. Every pack draws a
fresh master key and salt: no option sets them, so two packings never share a data key.

Successive generations of one dataset form a series: the first pack starts a new one with a
random id; later packs keep it with --previous OLD_IMAGE (which also sets the generation to
one more than the old image's) or --series ID (as encfs inspect prints it). Deployments pin
the series together with a minimum generation. --sign-key signs the image as its publisher
(create the key with encfs keygen --signing-key); a deployment that pins the signer's public
key accepts any later generation of the series without a new container policy.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.generationSet = cmd.Flags().Changed("generation")
			return runPack(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.keyFiles, "key-file", nil, "release key file (repeat to add keyslots, at most 8)")
	f.Uint64Var(&opts.generation, "generation", 1, "generation number within the series; deployments can require a minimum to refuse older images")
	f.StringVar(&opts.previous, "previous", "", "an earlier image of the same dataset: keep its series, generation one higher")
	f.StringVar(&opts.seriesHex, "series", "", "keep this series id (32 hex digits, as encfs inspect prints it); default: a new series")
	f.StringVar(&opts.signKeyFile, "sign-key", "", "Ed25519 signing key file of the publisher (encfs keygen --signing-key)")
	f.StringVar(&opts.uuidStr, "uuid", "", "fixed image UUID (default random)")
	f.StringVar(&opts.created, "created", "", "fixed creation time, RFC 3339 or Unix seconds (default now)")
	f.IntVar(&opts.workers, "workers", 0, "encryption goroutines (default: one per core)")
	f.BoolVar(&opts.force, "force", false, "replace IMAGE if it exists")
	f.StringVar(&opts.profile, "profile", "", "store this access profile (encfs mount --record-profile, recorded on an earlier image of the same tree) in the image: mounts fetch its files first")
	return cmd
}

// runPack packs the directory args[0] into the image args[1].
func runPack(ctx context.Context, opts *packOptions, args []string, stdout io.Writer) error {
	if len(opts.keyFiles) == 0 {
		return fmt.Errorf("at least one --key-file is required (create one with `encfs keygen --out FILE`)")
	}
	po := pack.Options{WriterOptions: image.WriterOptions{Generation: opts.generation, Workers: opts.workers}}
	if opts.previous != "" {
		if opts.seriesHex != "" {
			return fmt.Errorf("give --previous or --series, not both (--previous takes the series from the old image)")
		}
		h, err := readHeaderOf(ctx, opts.previous)
		if err != nil {
			return fmt.Errorf("--previous: %w", err)
		}
		po.Series = &h.Series
		if !opts.generationSet {
			po.Generation = h.Generation + 1
		} else if po.Generation <= h.Generation {
			return fmt.Errorf("--generation %d is not above generation %d of %s: a deployment that requires the newer image would refuse it", po.Generation, h.Generation, opts.previous)
		}
	}
	if opts.seriesHex != "" {
		s, err := parseSeries(opts.seriesHex)
		if err != nil {
			return fmt.Errorf("--series: %w", err)
		}
		po.Series = &s
	}
	if opts.signKeyFile != "" {
		k, err := readSigningKey(opts.signKeyFile)
		if err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
		defer keys.Zero(k)
		po.SignKey = k
	}
	for _, kf := range opts.keyFiles {
		k, err := keys.ReadKeyFile(kf)
		if err != nil {
			return err
		}
		defer keys.Zero(k)
		po.ReleaseKeys = append(po.ReleaseKeys, k)
	}
	if opts.profile != "" {
		p, err := profile.Load(opts.profile)
		if err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
		po.Profile = p.Inodes
	}
	if opts.uuidStr != "" {
		u, err := uuid.Parse(opts.uuidStr)
		if err != nil {
			return fmt.Errorf("--uuid: %v", err)
		}
		po.UUID = (*[16]byte)(u[:])
	}
	if opts.created != "" {
		t, err := parseTime(opts.created)
		if err != nil {
			return fmt.Errorf("--created: %v", err)
		}
		po.Created = t
	}
	po.NoReplace = !opts.force
	_, statErr := os.Lstat(args[1])
	existed := statErr == nil
	if existed && !opts.force {
		return fmt.Errorf("%s already exists: pass --force to replace it, or choose another name", args[1])
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		// A quick walk first, so that progress has totals and an estimate of the time left.
		if tot, err := pack.Measure(ctx, args[0]); err == nil {
			bar := newPackProgress(os.Stderr, tot.Files, tot.Bytes)
			po.Progress, po.FileDone = bar.addBytes, bar.fileDone
			defer bar.finish()
		}
	}
	start := time.Now()
	res, err := pack.Pack(ctx, args[0], args[1], po)
	if err != nil && ctx.Err() != nil {
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
	fmt.Fprintf(stdout, "packed %s: %d files, %d directories, %d symlinks, %d bytes in %.1fs (%.0f MB/s)\nimage %s  uuid %s  series %s  generation %d  integrity root %s\n",
		args[0], res.Index.Files, res.Index.Dirs, res.Index.Symlinks, res.Index.FileBytes, el.Seconds(),
		float64(res.Index.FileBytes)/1e6/el.Seconds(), args[1], res.Header.UUIDString(), res.Header.SeriesHex(), res.Header.Generation, res.Header.RootHex())
	if res.Header.Signed() {
		fmt.Fprintf(stdout, "signed by %s\n", res.Header.SignerHex())
	}
	return nil
}

func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339, s)
}

// parseSeries decodes a series id as encfs inspect prints it.
func parseSeries(s string) ([image.SeriesSize]byte, error) {
	var out [image.SeriesSize]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != image.SeriesSize {
		return out, fmt.Errorf("%q is not a series id: want %d hex digits, as encfs inspect prints it", s, 2*image.SeriesSize)
	}
	copy(out[:], b)
	return out, nil
}

// readSigningKey reads an Ed25519 signing key file: the 32-byte seed, raw, as
// encfs keygen --signing-key writes it.
func readSigningKey(path string) (ed25519.PrivateKey, error) {
	seed, err := keys.ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer keys.Zero(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

// readHeaderOf reads the header of a local image without a key.
func readHeaderOf(ctx context.Context, ref string) (*image.Header, error) {
	if blobio.IsRemote(ref) {
		return nil, fmt.Errorf("%s: give the path of a local copy of the earlier image (encfs inspect shows the series of a remote one, for --series)", blobio.Redact(ref))
	}
	src, err := sidecar.OpenSource(ctx, ref, sidecar.SourceOptions{})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return image.ReadHeader(ctx, src)
}
