package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/internal/testtree"
)

// TestVersion prints the module version, the VCS revision (or why there is none) and the Go
// version.
func TestVersion(t *testing.T) {
	out := mustRun(t, "--version")
	t.Logf("%s", out)
	if !strings.HasPrefix(out, "encfs ") || !strings.Contains(out, "revision ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version: %q", out)
	}
}

// TestUsageOnWrongArguments prints the command's usage after the error, and exits 2.
func TestUsageOnWrongArguments(t *testing.T) {
	for _, args := range [][]string{{"pack"}, {"pack", "--no-such-flag"}, {"upload", "a", "b", "c"}} {
		out, code := run(t, args...)
		if code != 2 || !strings.Contains(out, "Usage:\n  encfs "+args[0]) {
			t.Errorf("encfs %s: exit %d, want 2 and the usage:\n%s", strings.Join(args, " "), code, out)
		}
	}
	// An error that is not about the command line prints no usage.
	out, _ := run(t, "inspect", "/no/such/image")
	if strings.Contains(out, "Usage:") {
		t.Errorf("usage printed for a missing file:\n%s", out)
	}
}

// TestLogDurations writes durations as text in both log formats.
func TestLogDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		h, err := newLogHandler(&buf, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		slog.New(h).Info("waited", "waited", 10*time.Second, "took", 1234567*time.Nanosecond, "short", 42*time.Microsecond)
		got := buf.String()
		want := map[string][]string{
			"json": {`"waited":"10s"`, `"took":"1.235ms"`, `"short":"42µs"`},
			"text": {`waited=10s`, `took=1.235ms`, `short=42µs`},
		}[format]
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s log lacks %s: %s", format, w, got)
			}
		}
	}
}

// TestPackRefusesToReplace keeps an existing file unless --force, as keygen does.
func TestPackRefusesToReplace(t *testing.T) {
	dir := t.TempDir()
	k, img := filepath.Join(dir, "k"), filepath.Join(dir, "img")
	mustRun(t, "keygen", "--out", k)
	src := testtree.Build(t, filepath.Join(dir, "src"))
	os.WriteFile(img, []byte("precious"), 0o644)
	expectFail(t, "already exists: pass --force", "pack", "--key-file", k, src, img)
	if b, _ := os.ReadFile(img); string(b) != "precious" {
		t.Fatal("pack replaced an existing file")
	}
	mustRun(t, "pack", "--force", "--key-file", k, src, img)
	mustRun(t, "verify", "--key-file", k, img)
}

// TestPackProgress shows files and bytes done out of the totals, and the time left.
func TestPackProgress(t *testing.T) {
	p := newPackProgress(io.Discard, 10, 10<<20)
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		p.addBytes(1 << 20)
		p.fileDone()
	}
	time.Sleep(300 * time.Millisecond) // past the throttle: the next update is drawn
	p.addBytes(0)
	got := p.bar.String()
	t.Logf("%q", got)
	for _, want := range []string{"packing 3/10 files", "3.1/10 MB", "MB/s", "s:"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress %q lacks %q", got, want)
		}
	}
}

// TestPackInterrupted sends SIGINT (Ctrl-C) while a pack runs: it says that nothing was
// written and how to resume, and leaves no partial file.
func TestPackInterrupted(t *testing.T) {
	dir := t.TempDir()
	k, out := filepath.Join(dir, "k"), filepath.Join(dir, "out")
	mustRun(t, "keygen", "--out", k)
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o755)
	big, err := os.Create(filepath.Join(src, "big")) // sparse: no disk used, but a second or more to encrypt
	if err != nil {
		t.Fatal(err)
	}
	big.Truncate(2 << 30)
	big.Close()
	cmd := exec.Command(encfsBin, "pack", "--key-file", k, src, filepath.Join(out, "img"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitPartial := time.Now().Add(30 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(out, ".img.partial-*")); len(m) > 0 {
			break
		}
		if time.Now().After(waitPartial) {
			cmd.Process.Kill()
			t.Fatal("no partial image appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	t.Logf("stderr: %s", stderr.String())
	if err == nil {
		t.Fatal("the interrupted pack exited 0")
	}
	if s := stderr.String(); !strings.Contains(s, "interrupted: no image was written") || !strings.Contains(s, "run the same command again") {
		t.Errorf("the message does not say what was kept and how to resume")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// TestUploadInterrupted sends SIGINT while an upload runs against Azurite: it says what was
// kept and how to resume, and running it again resumes.
func TestUploadInterrupted(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	img := filepath.Join(t.TempDir(), "img")
	data := make([]byte, 64<<20)
	rand.Read(data)
	if err := os.WriteFile(img, data, 0o600); err != nil {
		t.Fatal(err)
	}
	u := az.BlobURL("images", "big.img")
	env := []string{"AZURE_STORAGE_CONNECTION_STRING=" + az.ConnectionString}
	cmd := exec.Command(encfsBin, "upload", "-q", "--block-size", "1", "--parallel", "1", img, u)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bb, err := blockblob.NewClientWithSharedKeyCredential(u, az.SharedKey(), &blockblob.ClientOptions{ClientOptions: az.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for { // until some blocks are staged
		l, err := bb.GetBlockList(context.Background(), blockblob.BlockListTypeUncommitted, nil)
		if err == nil && len(l.UncommittedBlocks) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no block was staged")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	t.Logf("stderr: %s", stderr.String())
	if err == nil {
		t.Fatal("the interrupted upload exited 0")
	}
	if s := stderr.String(); !strings.Contains(s, "interrupted: the blocks already sent stay") || !strings.Contains(s, "run the same command again to resume") {
		t.Errorf("the message does not say what was kept and how to resume")
	}
	o, e, c := runEnv(t, env, "upload", "-q", "--block-size", "1", img, u)
	if c != 0 || !strings.Contains(o, "already there from an interrupted upload") {
		t.Errorf("the second upload did not resume: exit %d\n%s%s", c, o, e)
	}
}
