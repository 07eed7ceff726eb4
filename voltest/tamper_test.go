package voltest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
	// Where the file's data lies on the device, from ext4's own extent map, while mounted.
	devBlocks := fileDeviceBlocks(t, filepath.Join(d.mnt, "data"))
	if len(devBlocks) != fileSize/4096 {
		t.Fatalf("filefrag maps %d device blocks of the 64 MiB file, want %d", len(devBlocks), fileSize/4096)
	}
	d.stop()

	// Damage 8 of the file's blocks, spread over its middle, in both physical slots of each
	// (docs/VOLUME.md, "Layout"): whichever slot the last commit made live fails to verify.
	f, err := os.OpenFile(store, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [24]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		t.Fatal(err)
	}
	extent := int64(binary.LittleEndian.Uint32(hdr[20:24]))
	for i := range 8 {
		blk := devBlocks[len(devBlocks)/4+i*len(devBlocks)/16]
		for slot := range int64(2) {
			off := dataSlotOffset(blk, slot, extent) + 100
			var b [1]byte
			if _, err := f.ReadAt(b[:], off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x40
			if _, err := f.WriteAt(b[:], off); err != nil {
				t.Fatal(err)
			}
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

// fileDeviceBlocks lists the device blocks that hold the file at path, in file order, from
// ext4's extent map (filefrag, e2fsprogs).
func fileDeviceBlocks(t *testing.T, path string) []int64 {
	t.Helper()
	out, err := exec.Command("filefrag", "-v", "-b4096", path).CombinedOutput()
	if err != nil {
		t.Fatalf("filefrag: %v: %s", err, out)
	}
	// "   0:        0..   16383:      34816..     51199:  16384: ..."
	ext := regexp.MustCompile(`(?m)^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):`)
	var blocks []int64
	for _, m := range ext.FindAllStringSubmatch(string(out), -1) {
		first, _ := strconv.ParseInt(m[3], 10, 64)
		last, _ := strconv.ParseInt(m[4], 10, 64)
		for b := first; b <= last; b++ {
			blocks = append(blocks, b)
		}
	}
	return blocks
}

// dataSlotOffset is where slot s of data block i lies in the store (docs/VOLUME.md, "Layout"),
// for a volume of extent E.
func dataSlotOffset(i, s, E int64) int64 {
	L := E / 128
	S := 2*E + 2*L + 10
	return 8192 + (i/E)*S*4096 + (s*E+i%E)*4096
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
