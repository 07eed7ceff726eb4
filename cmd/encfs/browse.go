package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
)

// ls, cat and verify read an image without FUSE: for debugging, and for machines without
// /dev/fuse.

// browseOptions are the flags of ls, cat and verify: the key files and where the image comes
// from (ls also has --recursive).
type browseOptions struct {
	keyFiles  []string
	recursive bool
	source    *sourceFlags
	minArgs   int // the command's arguments with the location, which withLocation needs
}

// newBrowseCommand builds ls, cat or verify: minArgs to maxArgs arguments (the image location,
// which --url-file or ENCFS_URL may give instead, then the command's own), a --key-file flag
// and the source flags, and run called with the options.
func newBrowseCommand(cmd *cobra.Command, minArgs, maxArgs int,
	run func(ctx context.Context, opts *browseOptions, args []string, stdout io.Writer) error) (*cobra.Command, *browseOptions) {
	opts := &browseOptions{minArgs: minArgs}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		return locationArgs(opts.source.loc, minArgs, maxArgs)(cmd, args)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return run(cmd.Context(), opts, args, cmd.OutOrStdout())
	}
	cmd.Flags().StringArrayVar(&opts.keyFiles, "key-file", nil, "release key file")
	opts.source = addSourceFlags(cmd, "none")
	return cmd, opts
}

// open opens and authenticates the image of args, and returns args with the location first
// (taken from --url-file or ENCFS_URL when the arguments leave it out).
func (opts *browseOptions) open(ctx context.Context, args []string) (*image.Image, []string, error) {
	args, err := opts.source.withLocation(args, opts.minArgs)
	if err != nil {
		return nil, nil, err
	}
	im, err := openImage(ctx, args[0], opts.keyFiles, opts.source, image.Options{})
	return im, args, err
}

func newLsCommand() *cobra.Command {
	cmd, opts := newBrowseCommand(&cobra.Command{
		Use:   "ls --key-file KEY IMAGE [PATH]",
		Short: "List a directory of an image without mounting it",
	}, 1, 2, runLs)
	cmd.Flags().BoolVarP(&opts.recursive, "recursive", "R", false, "list the whole subtree, with paths")
	return cmd
}

// runLs lists a directory (or the subtree) of the image of args.
func runLs(ctx context.Context, opts *browseOptions, args []string, stdout io.Writer) error {
	im, args, err := opts.open(ctx, args)
	if err != nil {
		return err
	}
	defer im.Close()
	p := "/"
	if len(args) == 2 {
		p = path.Clean("/" + args[1])
	}
	in, err := im.LookupPath(ctx, p)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if !in.IsDir() {
		return printEntry(ctx, w, im, p, &in)
	}
	if opts.recursive {
		return im.Walk(ctx, func(q string, in *image.Inode) error {
			if q == p || (p != "/" && !isUnder(q, p)) {
				return nil
			}
			return printEntry(ctx, w, im, q, in)
		})
	}
	entries, err := im.ReadDir(ctx, &in)
	if err != nil {
		return err
	}
	for _, e := range entries {
		child, err := im.EntryInode(ctx, e)
		if err != nil {
			return err
		}
		if err := printEntry(ctx, w, im, e.Name, &child); err != nil {
			return err
		}
	}
	return nil
}

func newCatCommand() *cobra.Command {
	cmd, _ := newBrowseCommand(&cobra.Command{
		Use:   "cat --key-file KEY IMAGE PATH",
		Short: "Write a file of an image to standard output without mounting it",
	}, 2, 2, runCat)
	return cmd
}

// runCat writes a file of the image of args to stdout.
func runCat(ctx context.Context, opts *browseOptions, args []string, stdout io.Writer) error {
	im, args, err := opts.open(ctx, args)
	if err != nil {
		return err
	}
	defer im.Close()
	in, err := im.LookupPath(ctx, args[1])
	if err != nil {
		return err
	}
	if !in.IsRegular() {
		return fmt.Errorf("%s is not a regular file", args[1])
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); ; {
		n, err := im.ReadFile(ctx, &in, buf, off)
		if err != nil {
			return fmt.Errorf("%s at offset %d: %w", args[1], off, err)
		}
		if n == 0 {
			return nil // the end of the file, as the index says
		}
		if _, err := stdout.Write(buf[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
}

func newVerifyCommand() *cobra.Command {
	cmd, _ := newBrowseCommand(&cobra.Command{
		Use:   "verify --key-file KEY IMAGE",
		Short: "Check every block and the whole index of an image",
		Long: `Check every content block (in 8 KiB units) against the integrity tree, every tree
block up to the authenticated root, and every directory, inode, symlink and xattr list. Exits 0
when the image is intact; otherwise non-zero, naming the first bad region or blocks and the files
they belong to.`,
	}, 1, 1, runVerify)
	return cmd
}

// runVerify checks every block and the whole index of the image of args.
func runVerify(ctx context.Context, opts *browseOptions, args []string, stdout io.Writer) error {
	im, args, err := opts.open(ctx, args)
	if err != nil {
		return err
	}
	defer im.Close()
	h := im.Header()
	bar := newProgress(int64(h.ContentBlocks*image.BlockSize), "verifying")
	start := time.Now()
	err = im.Verify(ctx, func(blocks uint64) {
		if bar != nil {
			bar.Add64(int64(blocks * image.BlockSize))
		}
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return fmt.Errorf("%s is damaged: %w", blobio.Display(args[0]), err)
	}
	sb := im.Superblock()
	fmt.Fprintf(stdout, "%s: OK (%d content blocks, %d tree blocks, %d inodes verified in %.1fs)\n",
		blobio.Display(args[0]), h.ContentBlocks, h.TreeBlocks, sb.InodeCount, time.Since(start).Seconds())
	// Authenticated values, for the deployment's pins (docs/OPERATIONS.md).
	fmt.Fprintf(stdout, "integrity root: %s\nseries:         %s\ngeneration:     %d\n", h.RootHex(), h.SeriesHex(), h.Generation)
	if h.Signed() {
		fmt.Fprintf(stdout, "signer:         %s (signature valid: %v)\n", h.SignerHex(), h.SignedBy(h.Signer[:]))
	}
	return nil
}

func isUnder(p, dir string) bool {
	return len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/'
}

// printEntry prints one ls -l style line for an inode of the image.
func printEntry(ctx context.Context, w io.Writer, im *image.Image, name string, in *image.Inode) error {
	size := int64(in.Size)
	if in.IsDir() {
		size = int64(in.Entries)
	}
	name = escapeName(name)
	if in.IsSymlink() {
		target, err := im.Readlink(ctx, in)
		if err != nil {
			return err
		}
		name += " -> " + escapeName(target)
	}
	_, err := fmt.Fprintln(w, lsLine(in.Mode, in.Nlink, in.UID, in.GID, size, time.Unix(in.MtimeSec, int64(in.MtimeNsec)), name))
	return err
}

// escapeName makes a name or link target from an image safe to print: control characters
// (which could move the cursor or rewrite earlier lines of a terminal), invalid UTF-8 and
// backslashes become escapes, as ls -b does. Other names print as they are.
func escapeName(s string) string {
	clean := utf8.ValidString(s)
	for i := 0; clean && i < len(s); i++ {
		clean = s[i] >= 0x20 && s[i] != 0x7f && s[i] != '\\'
	}
	if clean {
		for _, r := range s {
			if unicode.IsControl(r) {
				clean = false
				break
			}
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError && n <= 1, unicode.IsControl(r):
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// lsLine formats one entry as ls -l does; ls, demo and friends share it.
func lsLine(mode, nlink, uid, gid uint32, size int64, mtime time.Time, name string) string {
	return fmt.Sprintf("%s %3d %5d %5d %12d %s %s", lsMode(mode), nlink, uid, gid, size, mtime.UTC().Format("2006-01-02 15:04"), name)
}
