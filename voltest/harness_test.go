package voltest

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio/location"
	"github.com/encfs/encfs/blockdev"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/sidecar"
	"github.com/encfs/encfs/volume"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tarPath != "" {
		os.RemoveAll(filepath.Dir(tarPath))
	}
	os.Exit(code)
}

// requireVolumes skips a test that cannot mount volumes here (root, loop devices, mkfs.ext4,
// FUSE, and the tools it names), failing under CI=true instead, where it must run.
func requireVolumes(t testing.TB, tools ...string) {
	t.Helper()
	fstest.RequireFUSE(t)
	reason := ""
	if os.Geteuid() != 0 {
		reason = "volumes need root (loop devices, mount)"
	} else if _, err := os.Stat("/dev/loop-control"); err != nil {
		reason = "no /dev/loop-control: " + err.Error()
	}
	for _, tool := range append([]string{"mkfs.ext4", "e2fsck"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil && reason == "" {
			reason = tool + " is not installed (scripts/test.sh installs it as root)"
		}
	}
	if reason == "" {
		if err := blockdev.CleanStale(slog.New(slog.DiscardHandler)); err != nil {
			t.Logf("cleaning up after earlier runs: %v", err)
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("volume tests must run under CI=true: %s", reason)
	}
	t.Skip(reason)
}

// env is one test's binary, key and directory.
type env struct {
	t   *testing.T
	bin string
	key string // key file path
	dir string
	// extraEnv is added to every command's environment (an Azurite connection string).
	extraEnv []string
}

func newEnv(t *testing.T, tools ...string) *env {
	t.Helper()
	requireVolumes(t, tools...)
	e := &env{t: t, bin: fstest.Binary(t), dir: t.TempDir()}
	e.key = fstest.WriteKey(t, fstest.NewKey(t))
	return e
}

// run runs the encfs binary to completion and returns its combined output.
func (e *env) run(args ...string) (string, error) {
	cmd := exec.Command(e.bin, append([]string{"--log-format", "text"}, args...)...)
	cmd.Env = append(os.Environ(), e.extraEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// create makes a volume of size at target.
func (e *env) create(target, size string, extra ...string) {
	e.t.Helper()
	args := append([]string{"volume", "create", "--key-file", e.key, "--size", size}, extra...)
	if out, err := e.run(append(args, target)...); err != nil {
		e.t.Fatalf("volume create: %v\n%s", err, out)
	}
}

// daemon is a running `encfs volume mount` (or `encfs mount --config`).
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	mnt    string
	logs   *syncbuf.Buffer
	exited chan error
}

// mount starts `encfs volume mount` of target at a new directory and waits until it is live.
func (e *env) mount(target string, extra ...string) *daemon {
	e.t.Helper()
	mnt := filepath.Join(e.dir, fmt.Sprintf("mnt-%d", time.Now().UnixNano()))
	ready := mnt + ".ready"
	args := append([]string{"volume", "mount", "--key-file", e.key, "--ready-file", ready}, extra...)
	return e.start(append(args, target, mnt), mnt, ready)
}

// start runs the binary with args and waits for the ready file.
func (e *env) start(args []string, mnt, ready string) *daemon {
	e.t.Helper()
	d := &daemon{t: e.t, mnt: mnt, logs: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	d.cmd = exec.Command(e.bin, append([]string{"--log-format", "text"}, args...)...)
	d.cmd.Env = append(os.Environ(), e.extraEnv...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	e.t.Cleanup(func() { d.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return d
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			e.t.Fatalf("encfs exited before the mount was live: %v\n%s", err, d.logs)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no mount after 30s:\n%s", d.logs)
		}
	}
}

// stop sends SIGTERM and requires a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			d.t.Fatalf("encfs after SIGTERM: %v\n%s", err, d.logs)
		}
	case <-time.After(60 * time.Second):
		d.t.Fatalf("encfs did not exit within 60s of SIGTERM:\n%s", d.logs)
	}
}

// kill sends SIGKILL (if it still runs) and removes what it left: the filesystem on a loop
// device over its dead FUSE file.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	err := <-d.exited
	d.exited <- err
	if err := blockdev.CleanStale(slog.New(slog.DiscardHandler)); err != nil {
		d.t.Logf("cleaning up after SIGKILL: %v", err)
	}
	// The lazily detached filesystem goes once nothing uses it; wait for the mount table.
	for i := 0; i < 200 && isMounted(d.mnt); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

func isMounted(dir string) bool {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 && fields[1] == dir {
			return true
		}
	}
	return false
}

// fsck runs `e2fsck -fn` on the volume's filesystem (the volume unmounted, its journal
// replayed by a mount) and fails the test on any error it reports.
func (e *env) fsck(target string) {
	e.t.Helper()
	ctx := context.Background()
	var blob location.Options
	for _, kv := range e.extraEnv {
		if cs, ok := strings.CutPrefix(kv, "AZURE_STORAGE_CONNECTION_STRING="); ok {
			blob.ConnectionString = cs
		}
	}
	s, err := sidecar.OpenVolumeStore(ctx, target, sidecar.StoreOptions{ReadOnly: true, Blob: blob})
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := os.ReadFile(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := volume.Open(ctx, s, [][]byte{key}, volume.OpenOptions{ReadOnly: true, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		s.Close()
		e.t.Fatal(err)
	}
	defer v.Close(ctx)
	a, err := blockdev.Attach(ctx, v, true, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	out, fsckErr := exec.Command("e2fsck", "-fn", a.Loop).CombinedOutput()
	if err := a.Detach(ctx); err != nil {
		e.t.Errorf("detach after fsck: %v", err)
	}
	if fsckErr != nil {
		e.t.Fatalf("e2fsck -fn found errors: %v\n%s", fsckErr, out)
	}
}
