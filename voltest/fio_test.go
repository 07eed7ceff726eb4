package voltest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFioVerify writes with fio (sequential 1 MiB and random 4 KiB, each block carrying a
// crc32c fio checks), unmounts, and has fio verify every block through a fresh mount.
func TestFioVerify(t *testing.T) {
	e := newEnv(t, "fio")
	store := filepath.Join(e.dir, "vol")
	e.create(store, "256M")
	jobs := []fioJob{
		{"seq", "--rw=write --bs=1M --size=96M --ioengine=psync --end_fsync=1"},
		{"rand", "--rw=randwrite --bs=4k --size=32M --ioengine=libaio --iodepth=16 --direct=1 --end_fsync=1"},
	}
	d := e.mount(store)
	writeVerified(t, d.mnt, jobs)
	d.stop()
	verifyThroughFreshMount(t, e, store, jobs)
}

// fioJob is one fio job: its name (and file name) and its arguments.
type fioJob struct{ name, args string }

// writeVerified runs each job in dir, each block carrying a crc32c that fio checks after.
func writeVerified(t *testing.T, dir string, jobs []fioJob) {
	t.Helper()
	for _, j := range jobs {
		fio(t, dir, j.name, j.args, "--verify=crc32c", "--do_verify=1")
	}
}

// verifyThroughFreshMount mounts store again, has fio verify every block the jobs wrote, and
// checks the filesystem with e2fsck after unmounting.
func verifyThroughFreshMount(t *testing.T, e *env, store string, jobs []fioJob) {
	t.Helper()
	d := e.mount(store)
	for _, j := range jobs {
		fio(t, d.mnt, j.name, j.args, "--verify=crc32c", "--verify_only=1")
	}
	d.stop()
	e.fsck(store)
}

func fio(t *testing.T, dir, name, args string, extra ...string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "fio --name="+name+" --filename="+filepath.Join(dir, name)+" --verify_state_save=0 "+args+" "+shellJoin(extra))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fio %s %v: %v\n%s", name, extra, err, out)
	}
}

func shellJoin(args []string) string {
	s := ""
	for _, a := range args {
		s += " '" + a + "'"
	}
	return s
}
