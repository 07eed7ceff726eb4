package voltest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTamperThroughMount changes bytes of the store under a file's blocks and reads the file
// through a fresh mount: the damaged parts fail with EIO, the rest reads back exactly, and not
// one wrong byte comes through.
func TestTamperThroughMount(t *testing.T) {
	e := newEnv(t)
	store := filepath.Join(e.dir, "vol")
	e.create(store, "128M")
	before := blockHashes(t, store)

	const fileSize = 64 << 20
	want := make([]byte, fileSize)
	r := rand.New(rand.NewPCG(4, 5))
	for i := range want {
		want[i] = byte(r.Uint32())
	}
	addr := freeAddr(t)
	d := e.mount(store, "--metrics-addr", addr)
	if err := writeDurably(filepath.Join(d.mnt, "data"), want); err != nil {
		t.Fatal(err)
	}
	// The write side's metrics: at least the file's bytes written, a commit, the lock held.
	m := scrape(t, addr)
	for _, re := range []string{`(?m)^encfs_volume_write_bytes_total\{mount="[^"]+"\} (\d+(\.\d+)?e\+0[7-9]|[0-9]{8,})$`,
		`(?m)^encfs_volume_commit_duration_seconds_count\{mount="[^"]+"\} [1-9]`,
		`(?m)^encfs_volume_commit_failures_total\{mount="[^"]+"\} 0$`,
		`(?m)^encfs_volume_writer_lock_held\{mount="[^"]+"\} 1$`} {
		if !regexp.MustCompile(re).MatchString(m) {
			t.Errorf("the volume's write metrics do not match %s:\n%s", re, grepLines(m, "encfs_volume"))
		}
	}
	d.stop()

	// The store blocks the file's write changed (the file's ciphertext, mostly, and some
	// tree nodes and filesystem metadata); damage a few from the middle of the largest run,
	// where the file's data lies.
	changed := changedBlocks(t, store, before)
	run := longestRun(changed)
	if len(run) < 1000 {
		t.Fatalf("only %d contiguous changed store blocks after writing 64 MiB: the test cannot find the file's data", len(run))
	}
	f, err := os.OpenFile(store, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		blk := run[len(run)/4+i*len(run)/16]
		var b [1]byte
		f.ReadAt(b[:], blk*4096+100)
		b[0] ^= 0x40
		if _, err := f.WriteAt(b[:], blk*4096+100); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	addr = freeAddr(t)
	d = e.mount(store, "--read-only", "--metrics-addr", addr)
	fd, err := unix.Open(filepath.Join(d.mnt, "data"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var eio, good, wrong int
	buf := make([]byte, 64<<10)
	for off := 0; off < fileSize; off += len(buf) {
		n, err := unix.Pread(fd, buf, int64(off))
		switch {
		case errors.Is(err, syscall.EIO):
			eio++
		case err != nil:
			t.Fatalf("read at %d: %v", off, err)
		case n != len(buf):
			t.Fatalf("short read at %d: %d bytes", off, n)
		case !bytes.Equal(buf, want[off:off+n]):
			wrong++
		default:
			good++
		}
	}
	unix.Close(fd)
	t.Logf("64 KiB reads: %d good, %d EIO, %d wrong", good, eio, wrong)
	if wrong != 0 {
		t.Fatalf("%d reads returned wrong bytes after tampering", wrong)
	}
	if eio == 0 {
		t.Fatal("no read failed although the file's blocks were tampered with")
	}
	if good == 0 {
		t.Fatal("no read succeeded: the damage should stay local to the tampered blocks")
	}
	m = scrape(t, addr)
	if !regexp.MustCompile(`(?m)^encfs_integrity_failures_total\{mount="[^"]+"\} [1-9]`).MatchString(m) ||
		!regexp.MustCompile(`(?m)^encfs_read_errors_total\{cause="integrity",mount="[^"]+"\} [1-9]`).MatchString(m) {
		t.Errorf("the metrics do not count the integrity failures:\n%s", grepLines(m, "encfs_"))
	}
	d.stop()
	// One line per damaged block, however often the kernel read it, and no second line from
	// the device layer.
	logs := d.logs.String()
	if n := strings.Count(logs, "volume integrity check failed"); n < 1 || n > 8 {
		t.Errorf("%d integrity failure lines for 8 damaged blocks, want 1 to 8 (one per block read):\n%s", n, logs)
	}
	if strings.Contains(logs, "device read failed") {
		t.Errorf("the device layer logged the integrity failures again:\n%s", logs)
	}
}

// blockHashes hashes every 4 KiB block of the file at path that holds data (holes skipped).
func blockHashes(t *testing.T, path string) map[int64][32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int64][32]byte{}
	buf := make([]byte, 4096)
	var off int64
	for {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no data after off
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		for p := data &^ 4095; p < hole; p += 4096 {
			n, err := f.ReadAt(buf, p)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			out[p/4096] = sha256.Sum256(buf[:n])
		}
		off = hole
	}
	return out
}

// changedBlocks lists, in order, the blocks of path whose content differs from before.
func changedBlocks(t *testing.T, path string, before map[int64][32]byte) []int64 {
	after := blockHashes(t, path)
	var out []int64
	for blk, h := range after {
		if before[blk] != h {
			out = append(out, blk)
		}
	}
	slices.Sort(out)
	return out
}

// longestRun is the longest run of consecutive block numbers in sorted.
func longestRun(sorted []int64) []int64 {
	var best []int64
	start := 0
	for i := 1; i <= len(sorted); i++ {
		if i == len(sorted) || sorted[i] != sorted[i-1]+1 {
			if i-start > len(best) {
				best = sorted[start:i]
			}
			start = i
		}
	}
	return best
}

// freeAddr is a free 127.0.0.1 address for a metrics server.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape fetches /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
