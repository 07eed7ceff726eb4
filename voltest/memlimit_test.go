package voltest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// volumeBudget is the memory budget docs/OPERATIONS.md gives a sidecar serving one local
// volume: 160 MiB for the runtime and FUSE, and 96 MiB for the volume.
const volumeBudget = 256 << 20

// TestMemoryLimit runs `encfs volume mount` in a memory cgroup limited to its documented budget,
// as a container's memory limit would, and writes through it with fio (random 4 KiB direct
// writes, then sequential 1 MiB writes of more than the limit) with verification: the data
// must verify through a fresh mount and the daemon must never have met the OOM killer. The
// store's page cache is charged to the daemon too, so the kernel must reclaim it under the
// limit while the daemon writes.
func TestMemoryLimit(t *testing.T) {
	e := newEnv(t, "fio")
	cg := newMemoryCgroup(t, volumeBudget)
	store := filepath.Join(e.dir, "vol")
	e.create(store, "1G")
	jobs := []fioJob{
		{"rand", "--rw=randwrite --bs=4k --size=64M --ioengine=libaio --iodepth=16 --direct=1 --end_fsync=1"},
		{"seq", "--rw=write --bs=1M --size=384M --ioengine=psync --end_fsync=1"},
	}
	d := e.mount(store)
	cg.add(t, d.cmd.Process.Pid)
	writeVerified(t, d.mnt, jobs)
	if n := cg.ooms(t); n != 0 {
		t.Fatalf("the OOM killer acted %d times in the daemon's cgroup (limit %d MiB)", n, volumeBudget>>20)
	}
	t.Logf("peak memory of the daemon's cgroup, page cache included: %d MiB of %d", cg.peak(t)>>20, volumeBudget>>20)
	d.stop()
	verifyThroughFreshMount(t, e, store, jobs)
}

// memoryCgroup is a child memory cgroup of this test process's own, cgroup v1 or v2.
type memoryCgroup struct {
	dir string
	v2  bool
}

// newMemoryCgroup makes a memory cgroup limited to limit bytes, removed at the end of the
// test; the test is skipped where none can be made (no memory controller, not delegated).
func newMemoryCgroup(t *testing.T, limit int64) *memoryCgroup {
	t.Helper()
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no cgroups: %v", err)
	}
	defer f.Close()
	var v1, v2 string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case strings.Contains(","+parts[1]+",", ",memory,"):
			v1 = parts[2]
		}
	}
	name := fmt.Sprintf("encfs-memtest-%d", os.Getpid())
	cg := &memoryCgroup{}
	limitFile := "memory.limit_in_bytes"
	switch {
	case v1 != "":
		cg.dir = filepath.Join("/sys/fs/cgroup/memory", v1, name)
	case v2 != "":
		parent := filepath.Join("/sys/fs/cgroup", v2)
		if b, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control")); err != nil || !strings.Contains(string(b), "memory") {
			t.Skipf("cgroup v2 without the memory controller delegated to %s", parent)
		}
		cg.dir, cg.v2, limitFile = filepath.Join(parent, name), true, "memory.max"
	default:
		t.Skip("no memory cgroup")
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() { os.Remove(cg.dir) }) // after the daemon has exited (cleanups run in reverse)
	if err := os.WriteFile(filepath.Join(cg.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Fatalf("limit the cgroup: %v", err)
	}
	return cg
}

// add moves process pid (all its threads) into the cgroup; on v1 its memory moves with it.
func (cg *memoryCgroup) add(t *testing.T, pid int) {
	t.Helper()
	if !cg.v2 {
		os.WriteFile(filepath.Join(cg.dir, "memory.move_charge_at_immigrate"), []byte("3"), 0o644)
	}
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("move the daemon into the cgroup: %v", err)
	}
}

// ooms is how many times the OOM killer acted in the cgroup.
func (cg *memoryCgroup) ooms(t *testing.T) int64 {
	t.Helper()
	file, key := "memory.oom_control", "oom_kill"
	if cg.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.dir, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatalf("%s has no %s count:\n%s", file, key, b)
	return 0
}

// peak is the cgroup's highest memory use so far.
func (cg *memoryCgroup) peak(t *testing.T) int64 {
	t.Helper()
	file := "memory.max_usage_in_bytes"
	if cg.v2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(cg.dir, file))
	if err != nil {
		return -1
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
