package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
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

func init() {
	var keyFiles []string
	var asJSON bool
	var srcFlags *sourceFlags
	cmd := &cobra.Command{
		Use:   "inspect [--key-file KEY] IMAGE",
		Short: "Show an image's header; with a key also its file, directory and byte counts",
		Args:  func(cmd *cobra.Command, args []string) error { return locationArgs(srcFlags.loc, 1, 1)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			args, err := srcFlags.withLocation(args, 1)
			if err != nil {
				return err
			}
			so, err := srcFlags.options()
			if err != nil {
				return err
			}
			src, err := openSource(ctx, args[0], so)
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
			if len(keyFiles) > 0 {
				ks, zero, err := readKeyFiles(keyFiles)
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
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			fmt.Fprintf(out, "image:           %s\n", r.Image)
			fmt.Fprintf(out, "format:          encfs version %d (AES-256-XTS, BLAKE3 leaves under a SHA-256 tree)\n", r.FormatVersion)
			note := " (unauthenticated: read without a key; take pins from encfs verify)"
			if r.Authenticated {
				note = " (authenticated)"
			}
			fmt.Fprintf(out, "uuid:            %s\n", r.UUID)
			fmt.Fprintf(out, "series:          %s%s\n", r.Series, note)
			fmt.Fprintf(out, "generation:      %d%s\n", r.Generation, note)
			fmt.Fprintf(out, "created:         %s\n", r.Created)
			fmt.Fprintf(out, "size:            %d bytes (%d content blocks, %d tree blocks)\n", r.ImageBytes, r.ContentBlocks, r.TreeBlocks)
			fmt.Fprintf(out, "integrity root:  %s%s\n", r.IntegrityRoot, note)
			if r.Signer != "" {
				fmt.Fprintf(out, "signer:          %s (checked by deployments that pin it)\n", r.Signer)
			}
			for i, fp := range r.Keyslots {
				fmt.Fprintf(out, "keyslot %d:       key fingerprint %s\n", i, fp)
			}
			if r.Files != nil {
				fmt.Fprintf(out, "files:           %d (%d bytes)\ndirectories:     %d\nsymlinks:        %d\n", *r.Files, *r.FileBytes, *r.Directories, *r.Symlinks)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keyFiles, "key-file", nil, "release key file, to also show the index counts")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	srcFlags = addSourceFlags(cmd, "none")
	rootCmd.AddCommand(cmd)
}
