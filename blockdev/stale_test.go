package blockdev_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/encfs/encfs/blockdev"
)

// TestMain lets the test binary serve as the process a crash test kills: with
// BLOCKDEV_TEST_MOUNT=device:mountpoint it mounts the file device there, prints the loop
// device and waits to be killed.
func TestMain(m *testing.M) {
	if spec := os.Getenv("BLOCKDEV_TEST_MOUNT"); spec != "" {
		devPath, mnt, _ := strings.Cut(spec, ":")
		dev, err := blockdev.OpenFileDevice(devPath)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		mm, err := blockdev.Mount(context.Background(), dev, mnt, blockdev.Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(mm.Loop)
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// TestCleanStale kills a process with a mounted device and checks that CleanStale removes its
// filesystem, loop device and FUSE mount.
func TestCleanStale(t *testing.T) {
	requireLoop(t)
	devPath := filepath.Join(t.TempDir(), "dev.img")
	dev, err := blockdev.CreateFileDevice(devPath, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if err := blockdev.Mkfs(context.Background(), dev, ""); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BLOCKDEV_TEST_MOUNT="+devPath+":"+mnt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "/dev/loop") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not mount: %q %v", line, err)
	}
	loop := strings.TrimSpace(line)
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()

	if !mounted(t, mnt) {
		t.Fatal("the killed process's filesystem is not mounted: nothing to clean up")
	}
	if err := blockdev.CleanStale(quiet()); err != nil {
		t.Fatal(err)
	}
	if mounted(t, mnt) {
		t.Fatalf("%s still mounted after CleanStale", mnt)
	}
	deadline := time.Now().Add(10 * time.Second)
	for attached(t, loop) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still attached 10s after CleanStale", loop)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

func attached(t *testing.T, loop string) bool {
	out, err := exec.Command("losetup", "-a").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(out), loop+":")
}
