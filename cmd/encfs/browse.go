package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
)

// ls, cat and verify read an image without FUSE: for debugging, and for machines without
// /dev/fuse.

func init() {
	var lsSrc, catSrc, verifySrc *sourceFlags
	var keyFiles []string
	var recursive bool
	ls := &cobra.Command{
		Use:   "ls --key-file KEY IMAGE [PATH]",
		Short: "List a directory of an image without mounting it",
		Args:  func(cmd *cobra.Command, args []string) error { return locationArgs(lsSrc.loc, 1, 2)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			args, err := lsSrc.withLocation(args, 1)
			if err != nil {
				return err
			}
			im, err := openImage(ctx, args[0], keyFiles, lsSrc, image.Options{})
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
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			if !in.IsDir() {
				return printEntry(ctx, w, im, p, &in)
			}
			if recursive {
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
				child, err := im.Inode(ctx, e.Ino)
				if err != nil {
					return err
				}
				if err := printEntry(ctx, w, im, e.Name, &child); err != nil {
					return err
				}
			}
			return nil
		},
	}
	ls.Flags().StringArrayVar(&keyFiles, "key-file", nil, "release key file")
	ls.Flags().BoolVarP(&recursive, "recursive", "R", false, "list the whole subtree, with paths")
	lsSrc = addSourceFlags(ls)
	rootCmd.AddCommand(ls)

	var catKeys []string
	cat := &cobra.Command{
		Use:   "cat --key-file KEY IMAGE PATH",
		Short: "Write a file of an image to standard output without mounting it",
		Args:  func(cmd *cobra.Command, args []string) error { return locationArgs(catSrc.loc, 2, 2)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			args, err := catSrc.withLocation(args, 2)
			if err != nil {
				return err
			}
			im, err := openImage(ctx, args[0], catKeys, catSrc, image.Options{})
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
			out := cmd.OutOrStdout()
			for off := int64(0); ; {
				n, err := im.ReadFile(ctx, &in, buf, off)
				if n > 0 {
					if _, werr := out.Write(buf[:n]); werr != nil {
						return werr
					}
					off += int64(n)
				}
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("%s at offset %d: %w", args[1], off, err)
				}
			}
		},
	}
	cat.Flags().StringArrayVar(&catKeys, "key-file", nil, "release key file")
	catSrc = addSourceFlags(cat)
	rootCmd.AddCommand(cat)

	var verifyKeys []string
	verify := &cobra.Command{
		Use:   "verify --key-file KEY IMAGE",
		Short: "Check every block and the whole index of an image",
		Long: `Check every content block against the integrity tree, every tree block up to the
authenticated root, and every directory, inode, symlink and xattr list. Exits 0 when the image
is intact; otherwise non-zero, naming the first bad region or block and the file it belongs to.`,
		Args: func(cmd *cobra.Command, args []string) error { return locationArgs(verifySrc.loc, 1, 1)(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			args, err := verifySrc.withLocation(args, 1)
			if err != nil {
				return err
			}
			im, err := openImage(ctx, args[0], verifyKeys, verifySrc, image.Options{})
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
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (%d content blocks, %d tree blocks, %d inodes verified in %.1fs; integrity root %s)\n",
				blobio.Display(args[0]), h.ContentBlocks, h.TreeBlocks, sb.InodeCount, time.Since(start).Seconds(), h.RootHex())
			return nil
		},
	}
	verify.Flags().StringArrayVar(&verifyKeys, "key-file", nil, "release key file")
	verifySrc = addSourceFlags(verify)
	rootCmd.AddCommand(verify)
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
	if in.IsSymlink() {
		target, err := im.Readlink(ctx, in)
		if err != nil {
			return err
		}
		name += " -> " + target
	}
	_, err := fmt.Fprintln(w, lsLine(in.Mode, in.Nlink, in.UID, in.GID, size, time.Unix(in.MtimeSec, int64(in.MtimeNsec)), name))
	return err
}

// lsLine formats one entry as ls -l does; ls, demo and friends share it.
func lsLine(mode, nlink, uid, gid uint32, size int64, mtime time.Time, name string) string {
	return fmt.Sprintf("%s %3d %5d %5d %12d %s %s", lsMode(mode), nlink, uid, gid, size, mtime.UTC().Format("2006-01-02 15:04"), name)
}
