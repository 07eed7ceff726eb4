package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/mount"
)

// TestLogsCarryNoNamesOrSizes runs the real `encfs mount` on an image with one tampered block,
// reads the whole tree through FUSE (one read fails with EIO), stops it with SIGTERM, and
// searches everything it printed for the names inside the image, their sizes and the total
// size. Logs leave the TEE; names and sizes are part of what the image encrypts.
func TestLogsCarryNoNamesOrSizes(t *testing.T) {
	fstest.RequireFUSE(t)
	src := t.TempDir()
	files := map[string]int{
		"quarterly-forecast-confidential.xlsx": 2345678,
		"payroll-dept/salaries-2026.csv":       98765,
		"notes-on-the-merger.txt":              54321,
	}
	total := 0
	for name, size := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
			t.Fatal(err)
		}
		total += size
	}
	if err := os.Symlink("notes-on-the-merger.txt", filepath.Join(src, "merger-link")); err != nil {
		t.Fatal(err)
	}
	key := fstest.NewKey(t)
	img := fstest.Pack(t, src, key)
	victim := "quarterly-forecast-confidential.xlsx"
	im := fstest.OpenImage(t, img, key, image.Options{})
	in, err := im.LookupPath(t.Context(), victim)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(img)
	raw[image.HeaderSize+in.DataOffset+1<<20] ^= 1
	os.WriteFile(img, raw, 0o600)

	mnt := filepath.Join(t.TempDir(), "mnt")
	var out syncbuf.Buffer
	cmd := exec.Command(fstest.Binary(t), "--log-format", "text", "mount", "--key-file", fstest.WriteKey(t, key),
		"--metrics-addr", "127.0.0.1:0", img, mnt)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { // never leave the daemon or its mount behind
		select {
		case err := <-exited:
			exited <- err
		default:
			cmd.Process.Kill()
			<-exited
		}
		mount.CleanStale(mnt, slog.New(slog.DiscardHandler))
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "mounted "); {
		if time.Now().After(deadline) {
			t.Fatalf("no mount after 30s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	failed := 0
	err = filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			_, err = os.Readlink(p)
		case d.Type().IsRegular():
			_, err = os.ReadFile(p)
			if errors.Is(err, syscall.EIO) && filepath.Base(p) == victim {
				failed++
				err = nil
			}
		}
		return err
	})
	if err != nil || failed != 1 {
		t.Fatalf("reading the tree: %v; %d reads failed, want the tampered file's", err, failed)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", out.String())
	}

	logs := out.String()
	if !strings.Contains(logs, "integrity check failed") {
		t.Fatalf("the tampered block was not logged, so this run proves nothing:\n%s", logs)
	}
	secret := []string{fmt.Sprint(total), "merger-link"}
	for name, size := range files {
		secret = append(secret, fmt.Sprint(size))
		secret = append(secret, strings.Split(strings.TrimSuffix(name, filepath.Ext(name)), "/")...)
	}
	for _, s := range secret {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain %q, a name or size from inside the image:\n%s", s, logs)
		}
	}
}
