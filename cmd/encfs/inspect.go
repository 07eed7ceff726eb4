package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/sidecar"
)

// inspectReport is what `encfs inspect --json` prints.
type inspectReport struct {
	Image         string   `json:"image"`
	FormatVersion int      `json:"format_version"`
	UUID          string   `json:"uuid"`
	Series        string   `json:"series"`
	Generation    uint64   `json:"generation"`
	Signer        string   `json:"signer,omitempty"`
	Authenticated bool     `json:"authenticated"` // header MAC checked with a key
	Created       string   `json:"created"`
	ImageBytes    int64    `json:"image_bytes"`
	ContentBlocks uint64   `json:"content_blocks"`
	TreeBlocks    uint64   `json:"tree_blocks"`
	IntegrityRoot string   `json:"integrity_root"`
	Keyslots      []string `json:"keyslot_fingerprints"`
	Files         *uint64  `json:"files,omitempty"`
	Directories   *uint64  `json:"directories,omitempty"`
	Symlinks      *uint64  `json:"symlinks,omitempty"`
	FileBytes     *uint64  `json:"file_bytes,omitempty"`
}

// inspectOptions are the flags of `encfs inspect`.
type inspectOptions struct {
	keyFiles []string
	asJSON   bool
	source   *sourceFlags
}

func newInspectCommand() *cobra.Command {
	opts := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [--key-file KEY] IMAGE",
		Short: "Show an image's header; with a key also its file, directory and byte counts",
		Args:  func(cmd *cobra.Command, args []string) error { return locationArgs(opts.source.loc, 1, 1)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVar(&opts.keyFiles, "key-file", nil, "release key file, to also show the index counts")
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	opts.source = addSourceFlags(cmd, "none")
	return cmd
}

// runInspect prints the header of the image of args, and its index counts when a key opens it.
func runInspect(ctx context.Context, opts *inspectOptions, args []string, stdout io.Writer) error {
	args, err := opts.source.withLocation(args, 1)
	if err != nil {
		return err
	}
	so, err := opts.source.options()
	if err != nil {
		return err
	}
	src, err := sidecar.OpenSource(ctx, args[0], so)
	if err != nil {
		return err
	}
	defer src.Close()
	h, err := image.ReadHeader(ctx, src)
	if err != nil {
		return fmt.Errorf("%s: %w", blobio.Display(args[0]), err)
	}
	r := inspectReport{Image: blobio.Display(args[0]), FormatVersion: image.Version, UUID: h.UUIDString(), Series: h.SeriesHex(),
		Generation: h.Generation, Signer: h.SignerHex(),
		Created: time.Unix(h.Created, 0).UTC().Format(time.RFC3339), ImageBytes: h.ImageSize(),
		ContentBlocks: h.ContentBlocks, TreeBlocks: h.TreeBlocks, IntegrityRoot: h.RootHex()}
	for _, ks := range h.Keyslots {
		r.Keyslots = append(r.Keyslots, fmt.Sprintf("%x", ks.Fingerprint))
	}
	if len(opts.keyFiles) > 0 {
		ks, zero, err := readKeyFiles(opts.keyFiles)
		if err != nil {
			return err
		}
		im, err := image.Open(ctx, src, ks, image.Options{})
		zero()
		if err != nil {
			return fmt.Errorf("%s: %w", blobio.Display(args[0]), err)
		}
		r.Authenticated = true
		sb := im.Superblock()
		r.Files, r.Directories, r.Symlinks, r.FileBytes = &sb.Files, &sb.Dirs, &sb.Symlinks, &sb.FileBytes
	}
	if opts.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "image:           %s\n", r.Image)
	fmt.Fprintf(stdout, "format:          encfs version %d (AES-256-XTS, BLAKE3 leaves of 8 KiB units under a SHA-256 tree)\n", r.FormatVersion)
	note := " (unauthenticated: read without a key; take pins from encfs verify)"
	if r.Authenticated {
		note = " (authenticated)"
	}
	fmt.Fprintf(stdout, "uuid:            %s\n", r.UUID)
	fmt.Fprintf(stdout, "series:          %s%s\n", r.Series, note)
	fmt.Fprintf(stdout, "generation:      %d%s\n", r.Generation, note)
	fmt.Fprintf(stdout, "created:         %s\n", r.Created)
	fmt.Fprintf(stdout, "size:            %d bytes (%d content blocks, %d tree blocks)\n", r.ImageBytes, r.ContentBlocks, r.TreeBlocks)
	fmt.Fprintf(stdout, "integrity root:  %s%s\n", r.IntegrityRoot, note)
	if r.Signer != "" {
		fmt.Fprintf(stdout, "signer:          %s (checked by deployments that pin it)\n", r.Signer)
	}
	for i, fp := range r.Keyslots {
		fmt.Fprintf(stdout, "keyslot %d:       key fingerprint %s\n", i, fp)
	}
	if r.Files != nil {
		fmt.Fprintf(stdout, "files:           %d (%d bytes)\ndirectories:     %d\nsymlinks:        %d\n", *r.Files, *r.FileBytes, *r.Directories, *r.Symlinks)
	}
	return nil
}
