package mount_test

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/mount"
)

// daemon is a running `encfs mount`.
type daemon struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr syncbuf.Buffer
	exited chan error
}

// start runs the encfs binary with args; cleanup kills it and clears its mount at mountpoint.
func start(t *testing.T, bin, mountpoint string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bin, append([]string{"--log-format", "text"}, args...)...), exited: make(chan error, 1)}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.stdout = bufio.NewReader(out)
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { // never leave a daemon (or its mount) behind, whatever the test did
		d.cmd.Process.Kill()
		err := <-d.exited
		d.exited <- err
		mount.CleanStale(mountpoint, slog.New(slog.DiscardHandler))
	})
	return d
}

// waitLive reads the line `encfs mount` prints once the mount is live.
func (d *daemon) waitLive(t *testing.T) string {
	t.Helper()
	return d.waitLine(t, "mounted ")
}

// waitLine reads stdout up to the first line that starts with prefix.
func (d *daemon) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		for {
			s, err := d.stdout.ReadString('\n')
			if strings.HasPrefix(s, prefix) || err != nil {
				line <- s
				return
			}
		}
	}()
	select {
	case s := <-line:
		if !strings.HasPrefix(s, prefix) {
			t.Fatalf("no line starting %q on stdout; stderr:\n%s", prefix, d.stderr.String())
		}
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("no mount after 30s; stderr:\n%s", d.stderr.String())
		return ""
	}
}

func (d *daemon) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.exited:
		d.exited <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("encfs mount did not exit; stderr:\n%s", d.stderr.String())
		return nil
	}
}

type fixture struct {
	bin, img, keyFile, dir string
}

func newFixture(t *testing.T) fixture {
	fstest.RequireFUSE(t)
	bin := fstest.Binary(t)
	key := fstest.NewKey(t)
	return fixture{bin: bin, img: fstest.Pack(t, sampleTree(t), key), keyFile: fstest.WriteKey(t, key),
		dir: filepath.Join(t.TempDir(), "mnt")}
}

// TestMountCommandSIGTERM runs the real command: it mounts, writes the ready file, serves
// metrics, and on SIGTERM unmounts and exits 0, leaving no mount behind.
func TestMountCommandSIGTERM(t *testing.T) {
	f := newFixture(t)
	ready := filepath.Join(t.TempDir(), "ready")
	d := start(t, f.bin, f.dir, "mount", "--key-file", f.keyFile, "--ready-file", ready, "--metrics-addr", "127.0.0.1:0", f.img, f.dir)
	d.waitLive(t)
	if b, err := os.ReadFile(ready); err != nil || strings.TrimSpace(string(b)) != f.dir {
		t.Errorf("ready file: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(f.dir, "hello")); err != nil || string(b) != "hello\n" {
		t.Errorf("read: %q, %v", b, err)
	}
	if addr := metricsAddr(d.stderr.String()); addr == "" {
		t.Errorf("no metrics address logged:\n%s", d.stderr.String())
	} else {
		body := get(t, "http://"+addr+"/metrics")
		for _, m := range []string{"encfs_read_bytes_total", "encfs_fetch_bytes_total", "encfs_cache_hits_total", "encfs_integrity_failures_total", "encfs_files_read_total", "encfs_fetch_duration_seconds_count"} {
			if !strings.Contains(body, m) {
				t.Errorf("/metrics has no %s", m)
			}
		}
		if !strings.Contains(body, `encfs_read_bytes_total{mount="`+f.dir+`"} 6`) {
			t.Errorf("/metrics does not count the 6 bytes read")
		}
		get(t, "http://"+addr+"/healthz")
		get(t, "http://"+addr+"/readyz")
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t); err != nil {
		t.Errorf("exit after SIGTERM: %v; stderr:\n%s", err, d.stderr.String())
	}
	if mounted(t, f.dir) {
		t.Error("mount left behind after SIGTERM")
	}
	if _, err := os.Stat(ready); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ready file left behind: %v", err)
	}
}

// TestMountCommandWrongKey fails before anything is mounted, naming the fingerprints.
func TestMountCommandWrongKey(t *testing.T) {
	f := newFixture(t)
	wrong := fstest.WriteKey(t, fstest.NewKey(t))
	d := start(t, f.bin, f.dir, "mount", "--key-file", wrong, f.img, f.dir)
	if err := d.wait(t); err == nil {
		t.Fatal("mount with a wrong key succeeded")
	}
	if !strings.Contains(d.stderr.String(), "wrong key") {
		t.Errorf("stderr does not say wrong key:\n%s", d.stderr.String())
	}
	if mounted(t, f.dir) {
		t.Error("something was mounted with a wrong key")
	}
}

// TestMountCommandAfterCrash kills a daemon outright, which leaves a dead mount (ENOTCONN);
// the next run cleans it up and mounts again.
func TestMountCommandAfterCrash(t *testing.T) {
	f := newFixture(t)
	d := start(t, f.bin, f.dir, "mount", "--key-file", f.keyFile, f.img, f.dir)
	d.waitLive(t)
	d.cmd.Process.Kill()
	d.wait(t)
	if !mount.Disconnected(f.dir) || !mounted(t, f.dir) {
		t.Fatal("after SIGKILL: no dead mount (ENOTCONN) left to clean up")
	}
	d2 := start(t, f.bin, f.dir, "mount", "--key-file", f.keyFile, f.img, f.dir)
	d2.waitLive(t)
	if b, err := os.ReadFile(filepath.Join(f.dir, "hello")); err != nil || string(b) != "hello\n" {
		t.Errorf("read after remount: %q, %v", b, err)
	}
	if !strings.Contains(d2.stderr.String(), "left at the mount point by an earlier run") {
		t.Errorf("no warning about the stale mount:\n%s", d2.stderr.String())
	}
	d2.cmd.Process.Signal(syscall.SIGINT)
	if err := d2.wait(t); err != nil {
		t.Errorf("exit after SIGINT: %v", err)
	}
	if ms, _ := mount.MountsAt(f.dir); len(ms) != 0 {
		t.Errorf("mounts left behind: %+v", ms)
	}
}

func metricsAddr(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		if i := strings.Index(line, "msg=\"serving metrics\" addr="); i >= 0 {
			return strings.Fields(line[i+len("msg=\"serving metrics\" addr="):])[0]
		}
	}
	return ""
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// TestDemo runs the README's first command end to end.
func TestDemo(t *testing.T) {
	fstest.RequireFUSE(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	d := start(t, fstest.Binary(t), mnt, "demo", dir)
	d.waitLine(t, "Press Ctrl-C")
	if b, err := os.ReadFile(filepath.Join(mnt, "hello.txt")); err != nil || !strings.HasPrefix(string(b), "Hello") {
		t.Errorf("hello.txt: %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "latest-guide")); err != nil || target != "docs/guide.md" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	if err := d.wait(t); err != nil {
		t.Errorf("exit after Ctrl-C: %v; stderr:\n%s", err, d.stderr.String())
	}
	if mounted(t, mnt) {
		t.Error("demo left its mount behind")
	}
}

// TestMountCommandRefusesLiveEncfs runs a second `encfs mount` at the mount point of a live
// one: it fails naming the live mount, and the first keeps serving a reader that holds a file.
func TestMountCommandRefusesLiveEncfs(t *testing.T) {
	f := newFixture(t)
	d := start(t, f.bin, f.dir, "mount", "--key-file", f.keyFile, f.img, f.dir)
	d.waitLive(t)
	held, err := os.Open(filepath.Join(f.dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	d2 := start(t, f.bin, f.dir, "mount", "--key-file", f.keyFile, f.img, f.dir)
	if err := d2.wait(t); err == nil {
		t.Fatal("a second mount at a live mount point succeeded")
	}
	if s := d2.stderr.String(); !strings.Contains(s, "mount point in use") || !strings.Contains(s, "fuse.encfs") {
		t.Errorf("the refusal does not name the live mount:\n%s", s)
	}
	b := make([]byte, 16)
	if n, err := held.ReadAt(b, 0); string(b[:n]) != "hello\n" {
		t.Errorf("the held file no longer reads: %q, %v", b[:n], err)
	}
	if b, err := os.ReadFile(filepath.Join(f.dir, "hello")); err != nil || string(b) != "hello\n" {
		t.Errorf("the first mount stopped serving: %q, %v", b, err)
	}
	if ms, _ := mount.MountsAt(f.dir); len(ms) != 1 {
		t.Errorf("mount table at %s: %+v; want the first mount only", f.dir, ms)
	}
	held.Close()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t); err != nil {
		t.Errorf("first mount: exit after SIGTERM: %v", err)
	}
}

// TestMountCommandNonRoot mounts as an unprivileged user on a machine where that cannot work
// (no access to /dev/fuse, or no fusermount3): the error explains why and what to do instead.
func TestMountCommandNonRoot(t *testing.T) {
	f := newFixture(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the command as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is missing")
	}
	if _, err := exec.LookPath("fusermount3"); err == nil {
		if st, err := os.Stat("/dev/fuse"); err == nil && st.Mode().Perm()&0o006 == 0o006 {
			t.Skip("an unprivileged mount can work here (fusermount3 installed, /dev/fuse open to all)")
		}
	}
	// Everything the unprivileged user needs to read, in a directory it can enter.
	dir, err := os.MkdirTemp("", "encfs-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, p := range []string{f.bin, f.img, f.keyFile} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o777)
	mnt := filepath.Join(dir, "mnt")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		filepath.Join(dir, filepath.Base(f.bin)), "--log-format", "text", "mount", "--key-file", filepath.Join(dir, filepath.Base(f.keyFile)),
		filepath.Join(dir, filepath.Base(f.img)), mnt)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the unprivileged mount succeeded:\n%s", out)
	}
	t.Logf("output:\n%s", out)
	for _, want := range []string{"non-root", "/dev/fuse", "fusermount3", "alternatives"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not mention %q", want)
		}
	}
	if _, err := os.Lstat(mnt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed mount left its mount point: %v", err)
	}
}

// TestDemoClosedStdout runs `encfs demo DIR | head -1`: the demo outlives its reader, keeps
// serving, and unmounts cleanly on Ctrl-C instead of dying of SIGPIPE with a dead mount.
func TestDemoClosedStdout(t *testing.T) {
	fstest.RequireFUSE(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	cmd := exec.Command(fstest.Binary(t), "--log-format", "text", "demo", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-waited
		mount.CleanStale(mnt, slog.New(slog.DiscardHandler))
	})
	first, err := bufio.NewReader(out).ReadString('\n') // like head -1
	if err != nil {
		t.Fatalf("no output: %v; stderr:\n%s", err, stderr.String())
	}
	out.Close()
	t.Logf("first line: %s", first)
	deadline := time.Now().Add(30 * time.Second)
	for !mounted(t, mnt) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not mount; stderr:\n%s", stderr.String())
		}
		select {
		case err := <-exited:
			t.Fatalf("the demo exited (%v) after its stdout was closed; stderr:\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	time.Sleep(500 * time.Millisecond) // it has written its listing into the closed pipe by now
	select {
	case err := <-exited:
		t.Fatalf("the demo exited (%v) after its stdout was closed; stderr:\n%s", err, stderr.String())
	default:
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "hello.txt")); err != nil || !strings.HasPrefix(string(b), "Hello") {
		t.Errorf("hello.txt: %q, %v", b, err)
	}
	// A second demo in the same directory is refused before it packs anything.
	before, _ := os.Stat(filepath.Join(dir, "demo.img"))
	out2, err := exec.Command(fstest.Binary(t), "demo", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "mount point in use") {
		t.Errorf("a second demo on the same directory: %v\n%s", err, out2)
	}
	if after, _ := os.Stat(filepath.Join(dir, "demo.img")); before == nil || after == nil || !after.ModTime().Equal(before.ModTime()) {
		t.Error("the second demo packed the image again")
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not exit after Ctrl-C")
	}
	if mounted(t, mnt) {
		t.Error("the demo left its mount behind")
	}
	for _, name := range []string{"demo.key", "demo.img"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the demo did not keep %s: %v", name, err)
		}
	}
	if _, err := os.Lstat(mnt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the demo left its mount point: %v", err)
	}
}
