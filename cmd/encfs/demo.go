package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/mount"
	"github.com/encfs/encfs/pack"
	"github.com/encfs/encfs/sidecar"
)

// demoOptions are the flags of `encfs demo`.
type demoOptions struct {
	sample string
}

func newDemoCommand() *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo DIR",
		Short: "Pack the sample tree with a new key, mount it at DIR/mnt and keep it mounted until Ctrl-C",
		Long: `Run the whole thing on a development machine: create a release key (DIR/demo.key, kept across
runs), pack the sample tree kept in the repository (testdata/sample) into DIR/demo.img, mount it
at DIR/mnt, list what is there, and keep it mounted until Ctrl-C. Needs /dev/fuse (and root, or
fusermount3).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.sample, "sample", "", "tree to pack (default: testdata/sample of this repository)")
	return cmd
}

// runDemo packs the sample tree into dir, mounts it at dir/mnt and serves it until ctx ends.
func runDemo(ctx context.Context, opts demoOptions, dir string, out io.Writer) error {
	sample := opts.sample
	if sample == "" {
		var err error
		if sample, err = findSample(); err != nil {
			return err
		}
	}
	dir = absPath(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Another demo serving DIR/mnt is reported before anything is packed.
	if err := mount.Check(mount.Options{Mountpoint: filepath.Join(dir, "mnt")}); err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "demo.key")
	key, err := demoKey(keyFile)
	if err != nil {
		return err
	}
	defer keys.Zero(key)
	img := filepath.Join(dir, "demo.img")
	res, err := pack.Pack(ctx, sample, img, pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{key}}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "key    %s (fingerprint %s)\nimage  %s: %s packed, %d files, %d bytes, integrity root %s\n",
		keyFile, image.Fingerprint(key), img, sample, res.Index.Files, res.Index.FileBytes, res.Header.RootHex())
	m, err := sidecar.Mount(ctx, sidecar.MountSpec{Image: img, Mountpoint: filepath.Join(dir, "mnt"), CacheBytes: 64 << 20,
		AllowOther: os.Geteuid() == 0,
		Keys: func(context.Context) ([][]byte, error) {
			k, err := keys.ReadKeyFile(keyFile)
			return [][]byte{k}, err
		}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "mount  %s (read-only; every block verified before it is read)\n\n", m.Point.Target)
	if err := listTree(out, m.Point.Target); err != nil {
		m.Unmount()
		return err
	}
	fmt.Fprintf(out, "\nTry: cat %s\nPress Ctrl-C to unmount.\n", filepath.Join(m.Point.Target, "hello.txt"))
	select {
	case <-ctx.Done():
	case <-m.Point.Done():
	}
	if err := m.Unmount(); err != nil {
		return err
	}
	fmt.Fprintf(out, "unmounted %s\n", m.Point.Target)
	return nil
}

// demoKey reads the demo's key file, creating it (mode 0600) on the first run, so that the
// image of every run opens with the same key.
func demoKey(path string) ([]byte, error) {
	if k, err := keys.ReadKeyFile(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k := make([]byte, keys.KeySize)
	rand.Read(k)
	if err := os.WriteFile(path, k, 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// findSample locates testdata/sample: in the module around the working directory (go run
// from anywhere in the repository), else beside this source file (a binary built from this
// checkout). The tree is not embedded because go:embed cannot hold its symlink or its modes.
func findSample() (string, error) {
	var roots []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			roots = append(roots, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		roots = append(roots, filepath.Join(filepath.Dir(file), "..", ".."))
	}
	for _, r := range roots {
		mod, err := os.ReadFile(filepath.Join(r, "go.mod"))
		if err != nil || !bytes.HasPrefix(mod, []byte("module github.com/encfs/encfs\n")) {
			continue
		}
		if st, err := os.Stat(filepath.Join(r, "testdata", "sample")); err == nil && st.IsDir() {
			return filepath.Join(r, "testdata", "sample"), nil
		}
	}
	return "", errors.New("cannot find testdata/sample of the encfs repository; run from inside the repository or pass --sample DIR")
}

// listTree prints the tree under root like ls -lR, reading it through the mount.
func listTree(out io.Writer, root string) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		if p != root {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s:\n", p)
		for _, e := range entries {
			var st syscall.Stat_t
			full := filepath.Join(p, e.Name())
			if err := syscall.Lstat(full, &st); err != nil {
				return err
			}
			name := e.Name()
			if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
				target, err := os.Readlink(full)
				if err != nil {
					return err
				}
				name += " -> " + target
			}
			fmt.Fprintln(w, lsLine(st.Mode, uint32(st.Nlink), st.Uid, st.Gid, st.Size, time.Unix(st.Mtim.Unix()), name))
		}
		return nil
	})
}

// lsMode formats st_mode as ls -l does (drwxr-sr-x, -rwsr-xr-x, drwxrwxrwt, lrwxrwxrwx).
func lsMode(mode uint32) string {
	b := []byte("?rwxrwxrwx")
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		b[0] = 'd'
	case syscall.S_IFLNK:
		b[0] = 'l'
	case syscall.S_IFREG:
		b[0] = '-'
	}
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if mode&bit != 0 {
			if b[pos] == '-' {
				b[pos] = unset
			} else {
				b[pos] = set
			}
		}
	}
	special(syscall.S_ISUID, 3, 's', 'S')
	special(syscall.S_ISGID, 6, 's', 'S')
	special(syscall.S_ISVTX, 9, 't', 'T')
	return string(b)
}

// absPath is filepath.Abs for messages; it keeps the input on error.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
