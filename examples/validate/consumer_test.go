package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const waitScript = "../consumer/wait-for-mount.sh"

// TestWaitForMountScript runs examples/consumer/wait-for-mount.sh: it must be valid POSIX sh
// (and clean under shellcheck when installed), time out with a message when nothing is
// mounted, and run the command once the published symlink or the ready file appears.
func TestWaitForMountScript(t *testing.T) {
	if out, err := exec.Command("sh", "-n", waitScript).CombinedOutput(); err != nil {
		t.Fatalf("sh -n %s: %v\n%s", waitScript, err, out)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, "-s", "sh", waitScript).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", waitScript, err, out)
		}
	} else {
		t.Log("shellcheck not installed; checked with sh -n only")
	}

	dir := t.TempDir()
	mp := filepath.Join(dir, "share")

	// Nothing there: a timeout, exit 1, a message naming the path.
	out, err := exec.Command("sh", waitScript, "-t", "1", mp, "true").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), mp) {
		t.Errorf("no mount: got %v, %q; want exit 1 naming %s", err, out, mp)
	}

	// An empty directory in place is not a mount.
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("sh", waitScript, "-t", "1", mp, "true").Run(); err == nil {
		t.Errorf("an empty directory counted as a mount")
	}
	os.Remove(mp)

	// The published symlink appears later: the command runs.
	hidden := filepath.Join(dir, ".filesystem-0")
	if err := os.Mkdir(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hidden, "hello.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(1200 * time.Millisecond)
		os.Symlink(".filesystem-0", mp)
	}()
	out, err = exec.Command("sh", waitScript, "-t", "20", mp, "cat", filepath.Join(mp, "hello.txt")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hi") {
		t.Errorf("published symlink: got %v, %q", err, out)
	}

	// A ready file.
	rf := filepath.Join(dir, "ready")
	if err := os.WriteFile(rf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", waitScript, "-t", "1", "-r", rf, filepath.Join(dir, "other"), "echo", "ok").CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("ready file: got %v, %q", err, out)
	}
}
