package voltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/encfs/encfs/blobio/azuritetest"
)

// The crash tests kill the daemon with SIGKILL at a random moment of a workload, remount the
// volume (the filesystem replays its journal), check that every file whose fsync returned is
// intact, unmount, and run e2fsck -fn. Each round's state is some committed flush at or after
// the last one acknowledged, so the filesystem must be consistent and the fsync'd files whole.

// crashRounds is how many kills each crash test makes (more without -short).
func crashRounds() int {
	if testing.Short() {
		return 2
	}
	return 10
}

// TestCrashDuringFio kills the daemon during fio random and sequential writes with fsyncs.
func TestCrashDuringFio(t *testing.T) {
	e := newEnv(t, "fio")
	store := filepath.Join(e.dir, "vol")
	e.create(store, "256M")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range crashRounds() {
		d := e.mount(store)
		fioCmd := exec.Command("sh", "-c", fmt.Sprintf("fio --name=r --filename=%s/r%d --rw=randwrite --bs=4k --size=48M "+
			"--ioengine=libaio --iodepth=16 --direct=1 --fsync=64 --time_based --runtime=30 "+
			"--name=s --filename=%s/s%d --rw=write --bs=1M --size=48M --fsync=8 --time_based --runtime=30",
			d.mnt, round, d.mnt, round))
		if err := fioCmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
		d.kill()
		fioCmd.Process.Kill()
		fioCmd.Wait()
		// Remount: the journal is replayed; then a clean unmount and a check.
		d = e.mount(store)
		d.stop()
		e.fsck(store)
		t.Logf("round %d: consistent after SIGKILL", round)
	}
}

// TestCrashDuringMetadata kills the daemon while a tar of Go's source tree is unpacked, files
// are renamed back and forth, and a writer creates files it fsyncs (file and directory) and
// records. After each kill every recorded file must read back exactly.
func TestCrashDuringMetadata(t *testing.T) {
	e := newEnv(t, "tar")
	store := filepath.Join(e.dir, "vol")
	e.create(store, "512M")
	tarball := goSourceTar(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var acked []ackedFile
	for round := range crashRounds() {
		acked = crashRound(t, e, store, tarball, round, time.Duration(300+rng.IntN(2000))*time.Millisecond, acked, nil)
	}
	if len(acked) == 0 {
		t.Fatal("no file was fsync'd before a kill: the test checked nothing")
	}
}

// TestCrashPageBlob is a crash round against a page blob in Azurite, through the write-back
// cache: the kill loses what the cache held, never what a flush acknowledged. The dead
// writer's lease is broken before the remount, as an operator would once it is surely gone.
func TestCrashPageBlob(t *testing.T) {
	e := newEnv(t, "tar")
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "vols", false)
	e.extraEnv = []string{"AZURE_STORAGE_CONNECTION_STRING=" + az.ConnectionString}
	url := az.BlobURL("vols", "crash")
	e.create(url, "256M")
	breakLease := func() {
		lc, err := lease.NewBlobClient(az.Container(t, "vols").NewBlobClient("crash"), nil)
		if err != nil {
			t.Fatal(err)
		}
		zero := int32(0)
		if _, err := lc.BreakLease(context.Background(), &lease.BlobBreakOptions{BreakPeriod: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	acked := crashRound(t, e, url, goSourceTar(t), 0, 1500*time.Millisecond, nil, breakLease)
	if len(acked) == 0 {
		t.Fatal("no file was fsync'd before the kill: the test checked nothing")
	}
}

// crashRound mounts target and runs an untar, renames and fsync'd writes in it, kills the
// daemon after wait, runs afterKill (if any), remounts, checks every file acknowledged so far
// (acked and this round's), unmounts and runs e2fsck. It returns all acknowledged files.
func crashRound(t *testing.T, e *env, target, tarball string, round int, wait time.Duration, acked []ackedFile, afterKill func()) []ackedFile {
	t.Helper()
	d := e.mount(target)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(3)
	go func() { // untar
		defer wg.Done()
		dir := filepath.Join(d.mnt, fmt.Sprintf("tree%d", round))
		if os.Mkdir(dir, 0o755) == nil {
			exec.CommandContext(ctx, "tar", "-xf", tarball, "-C", dir).Run()
		}
	}()
	go func() { // renames
		defer wg.Done()
		dir := filepath.Join(d.mnt, fmt.Sprintf("ren%d", round))
		if os.Mkdir(dir, 0o755) != nil {
			return
		}
		for i := 0; ctx.Err() == nil; i++ {
			a, b := filepath.Join(dir, fmt.Sprint(i%50)), filepath.Join(dir, fmt.Sprint((i+7)%50))
			if os.WriteFile(a, []byte(a), 0o644) != nil || os.Rename(a, b) != nil {
				return
			}
		}
	}()
	go func() { // fsync'd files
		defer wg.Done()
		dir := filepath.Join(d.mnt, fmt.Sprintf("sync%d", round))
		if os.Mkdir(dir, 0o755) != nil || syncDir(dir) != nil || syncDir(d.mnt) != nil {
			return
		}
		for i := 0; ctx.Err() == nil; i++ {
			f := ackedFile{rel: filepath.Join(fmt.Sprintf("sync%d", round), fmt.Sprint(i)), seed: uint64(round)<<32 | uint64(i),
				size: 1 + int(uint64(i)*7919%(256<<10))}
			if writeDurably(filepath.Join(d.mnt, f.rel), f.content()) != nil {
				return
			}
			mu.Lock()
			acked = append(acked, f)
			mu.Unlock()
		}
	}()
	time.Sleep(wait)
	d.kill()
	cancel()
	wg.Wait()
	if afterKill != nil {
		afterKill()
	}

	d = e.mount(target)
	for _, f := range acked {
		got, err := os.ReadFile(filepath.Join(d.mnt, f.rel))
		if err != nil {
			t.Fatalf("round %d: fsync'd file %s: %v", round, f.rel, err)
		}
		if !bytes.Equal(got, f.content()) {
			t.Fatalf("round %d: fsync'd file %s differs after the crash (%d bytes, want %d)", round, f.rel, len(got), f.size)
		}
	}
	d.stop()
	e.fsck(target)
	t.Logf("round %d: consistent, %d fsync'd files intact", round, len(acked))
	return acked
}

type ackedFile struct {
	rel  string
	seed uint64
	size int
}

func (f ackedFile) content() []byte {
	b := make([]byte, f.size)
	r := rand.New(rand.NewPCG(f.seed, 3))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeDurably writes path through a temporary name, fsyncs it, renames it into place and
// fsyncs the directory: once it returns, the file survives a crash.
func writeDurably(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

var (
	tarOnce sync.Once
	tarPath string
	tarErr  error
)

// goSourceTar is a tar of Go's source tree, made once per test binary.
func goSourceTar(t *testing.T) string {
	tarOnce.Do(func() {
		dir, err := os.MkdirTemp("", "voltest-gosrc-")
		if err != nil {
			tarErr = err
			return
		}
		tarPath = filepath.Join(dir, "src.tar")
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			tarErr = err
			return
		}
		out, err := exec.Command("tar", "-cf", tarPath, "-C", strings.TrimSpace(string(goroot)), "src").CombinedOutput()
		if err != nil {
			tarErr = errors.Join(err, errors.New(string(out)))
		}
	})
	if tarErr != nil {
		t.Fatalf("tar of Go's source tree: %v", tarErr)
	}
	return tarPath
}
