package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/internal/testtree"
	"github.com/encfs/encfs/mount"
)

// The dataset: files of a few MiB, so that reads span chunks (--chunk-size 1M below), plus
// small ones packed together.
var sizes = func() map[string]int {
	m := map[string]int{}
	for i := range 24 {
		m[fmt.Sprintf("big/%02d", i)] = 2<<20 + i*4099
	}
	for i := range 200 {
		m[fmt.Sprintf("small/%03d", i)] = 1000 + i*37
	}
	return m
}()

// skipShort skips the chaos tests under -short: they are slow rather than large, and the
// daemon under test is a separate process that the race detector would not watch anyway.
// scripts/test.sh runs them in its step without the race detector.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a chaos test takes minutes; scripts/test.sh runs it without -short")
	}
}

// world is one image in Azurite behind a fault proxy, and the encfs binary.
type world struct {
	bin, keyFile, url string
	az                *azuritetest.Server
	px                *faultproxy.Proxy
	data              []byte
}

func newWorld(t *testing.T) *world {
	fstest.RequireFUSE(t)
	src := t.TempDir()
	for name, n := range sizes {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, testtree.Content(name, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := fstest.NewKey(t)
	data, err := os.ReadFile(fstest.Pack(t, src, key))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{bin: fstest.Binary(t), keyFile: fstest.WriteKey(t, key), data: data}
	w.az = azuritetest.Start(t, azuritetest.Config{})
	w.az.CreateContainer(t, "chaos", false)
	w.az.PutBlockBlob(t, "chaos", "data.img", data, nil)
	w.px = faultproxy.New(t, w.az.Endpoint)
	w.url = w.px.Rewrite(w.az.SAS(t, "chaos", "data.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour)))
	return w
}

// daemon is a running `encfs mount` with JSON logs.
type daemon struct {
	cmd     *exec.Cmd
	dir     string
	stderr  syncbuf.Buffer
	exited  chan error
	metrics string // host:port
	budget  int64  // the memory budget it logged
}

// mount starts encfs mount on the world's image with the given read timeout and waits until it
// is live. Cleanup stops it and clears its mount. Unless extra says otherwise, the mount has no
// disk cache and no background fetch, so that faults meet the reads.
func (w *world) mount(t *testing.T, timeout time.Duration, extra ...string) *daemon {
	t.Helper()
	d := &daemon{dir: filepath.Join(t.TempDir(), "mnt"), exited: make(chan error, 1)}
	if len(extra) == 0 {
		extra = []string{"--prefetch", "none", "--disk-cache", "none"}
	}
	args := append([]string{"--log-format", "json", "mount", "--key-file", w.keyFile, "--read-timeout", timeout.String(),
		"--chunk-size", "1M", "--cache-size", "64M", "--metrics-addr", "127.0.0.1:0"}, extra...)
	d.cmd = exec.Command(w.bin, append(args, w.url, d.dir)...)
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-d.exited:
			d.exited <- err
		case <-time.After(20 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
		mount.CleanStale(d.dir, slog.New(slog.DiscardHandler))
	})
	live := make(chan error, 1)
	go func() {
		s, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && !strings.HasPrefix(s, "mounted ") {
			err = fmt.Errorf("unexpected first line %q", s)
		}
		live <- err
		io.Copy(io.Discard, out)
	}()
	select {
	case err := <-live:
		if err != nil {
			t.Fatalf("encfs mount: %v; stderr:\n%s", err, d.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no mount after 60s; stderr:\n%s", d.stderr.String())
	}
	for _, rec := range d.logs(t) {
		switch rec["msg"] {
		case "serving metrics":
			d.metrics, _ = rec["addr"].(string)
		case "memory budget":
			if b, ok := rec["bytes"].(float64); ok {
				d.budget = int64(b)
			}
		}
	}
	if d.metrics == "" || d.budget == 0 {
		t.Fatalf("no metrics address or memory budget logged:\n%s", d.stderr.String())
	}
	return d
}

// logged reports whether a log line with this message was written.
func (d *daemon) logged(msg string) bool {
	for _, rec := range d.logs(nil) {
		if rec["msg"] == msg {
			return true
		}
	}
	return false
}

// stop sends SIGTERM and waits for the daemon to exit.
func (d *daemon) stop(t *testing.T) {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err // for the cleanup
		if err != nil {
			t.Errorf("encfs mount exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("encfs mount did not exit after SIGTERM")
	}
}

// logs parses the daemon's JSON log lines.
func (d *daemon) logs(_ *testing.T) []map[string]any {
	var recs []map[string]any
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			recs = append(recs, rec)
		}
	}
	return recs
}

// probe returns the status code and body of a health endpoint.
func (d *daemon) probe(t *testing.T, path string) (int, string) {
	resp, err := http.Get("http://" + d.metrics + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// peakRSS is the daemon's peak resident memory (VmHWM).
func (d *daemon) peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// outcome counts what verifying readers saw.
type outcome struct {
	ok, eio, slowest atomic.Int64 // slowest in nanoseconds, of failed reads
}

// readFile reads name whole through the mount, one read() of 1 MiB at a time, and checks the
// result: the file's bytes, or EIO. Anything else (wrong bytes, a short read without error,
// another error) fails the test. Each failed read() counts towards o.slowest.
func readFile(t *testing.T, dir, name string, o *outcome) {
	want := testtree.Content(name, sizes[name])
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Errorf("open %s: %v", name, err)
		return
	}
	defer f.Close()
	got := make([]byte, 0, len(want))
	buf := make([]byte, 1<<20)
	for {
		start := time.Now()
		n, err := f.Read(buf)
		took := time.Since(start)
		got = append(got, buf[:n]...)
		switch {
		case err == io.EOF:
			if !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes and no error, want %d: a short or wrong read", name, len(got), len(want))
				return
			}
			o.ok.Add(1)
			return
		case errors.Is(err, syscall.EIO):
			o.eio.Add(1)
			for {
				s := o.slowest.Load()
				if int64(took) <= s || o.slowest.CompareAndSwap(s, int64(took)) {
					break
				}
			}
			return
		case err != nil:
			t.Errorf("%s: %v, want its bytes or EIO", name, err)
			return
		}
	}
}

// checkSizes fails the test if any file's size differs from the packed one.
func checkSizes(t *testing.T, dir string) {
	for name, n := range sizes {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() != int64(n) {
			t.Errorf("%s: size %v (%v), want %d", name, st.Size(), err, n)
		}
	}
}

// dropCaches makes the next reads reach the daemon instead of the kernel's page cache.
func dropCaches(t *testing.T) {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		t.Logf("cannot drop the page cache (%v): reads may be served by the kernel", err)
	}
}

// readAll has readers goroutines read every file once, in a random order.
func readAll(t *testing.T, dir string, readers int, o *outcome) {
	names := make([]string, 0, len(sizes))
	for name := range sizes {
		names = append(names, name)
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	work := make(chan string)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				readFile(t, dir, name, o)
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
}

// TestChaos runs each storage fault against a fresh mount (cold caches) with verifying readers,
// then a soak of random faults, then replaces the blob under a mount.
func TestChaos(t *testing.T) {
	skipShort(t)
	w := newWorld(t)
	const timeout = 3 * time.Second
	w.px.SetStall(time.Hour)
	w.px.SetRetryAfter(time.Second)

	for _, f := range []faultproxy.Fault{faultproxy.Close, faultproxy.Reset, faultproxy.Truncate,
		faultproxy.Throttle, faultproxy.ServerError, faultproxy.Stall} {
		t.Run(f.String(), func(t *testing.T) {
			d := w.mount(t, timeout)
			w.px.Always(f)
			var o outcome
			readAll(t, d.dir, 16, &o)
			w.px.Always(faultproxy.None)
			if slowest := time.Duration(o.slowest.Load()); slowest > timeout*12/10 {
				t.Errorf("a failed read() took %v; the timeout is %v", slowest, timeout)
			}
			checkSizes(t, d.dir)
			t.Logf("%v: %d files read whole, %d EIO (slowest failed read() %v)", f, o.ok.Load(), o.eio.Load(),
				time.Duration(o.slowest.Load()).Round(time.Millisecond))
			// After the fault all is served again: once requests still waiting when it ended have
			// met their deadline, and the chunks they wanted were refused for FailedChunkTTL.
			time.Sleep(timeout + blobio.FailedChunkTTL + 500*time.Millisecond)
			dropCaches(t)
			var after outcome
			readAll(t, d.dir, 8, &after)
			if after.eio.Load() != 0 {
				t.Errorf("after the fault: %d reads still failed; log:\n%s", after.eio.Load(), d.stderr.String())
			}
		})
	}

	t.Run("soak", func(t *testing.T) {
		const soak = 20 * time.Second
		d := w.mount(t, timeout)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // faults come and go
			defer close(done)
			faults := []faultproxy.Fault{faultproxy.None, faultproxy.None, faultproxy.Close, faultproxy.Reset,
				faultproxy.Truncate, faultproxy.Throttle, faultproxy.ServerError}
			for {
				select {
				case <-stop:
					w.px.Always(faultproxy.None)
					return
				case <-time.After(300 * time.Millisecond):
					w.px.Always(faults[rand.IntN(len(faults))])
				}
			}
		}()
		var o outcome
		for end := time.Now().Add(soak); time.Now().Before(end); {
			dropCaches(t)
			readAll(t, d.dir, 16, &o)
		}
		close(stop)
		<-done
		checkSizes(t, d.dir)
		peak := d.peakRSS(t)
		t.Logf("soak %v: %d files read whole, %d EIO; peak RSS %d MiB, budget %d MiB", soak, o.ok.Load(), o.eio.Load(), peak>>20, d.budget>>20)
		if peak > d.budget {
			t.Errorf("peak RSS %d MiB over the memory budget of %d MiB", peak>>20, d.budget>>20)
		}
	})

	t.Run("replaced", func(t *testing.T) {
		d := w.mount(t, timeout)
		w.az.PutBlockBlob(t, "chaos", "data.img", bytes.Repeat([]byte{7}, len(w.data)), nil)
		var o outcome
		readAll(t, d.dir, 8, &o) // opens the breaker
		before, lines := w.px.Requests(), len(d.logs(t))
		for range 3 {
			dropCaches(t)
			readAll(t, d.dir, 8, &o)
		}
		if o.eio.Load() == 0 {
			t.Errorf("no read failed after the blob was replaced (%d read whole)", o.ok.Load())
		}
		// The breaker lets a probe through every 10 s, and the log does not grow per read.
		if n := w.px.Requests() - before; n > 2 {
			t.Errorf("%d requests to storage with the breaker open", n)
		}
		if n := len(d.logs(t)) - lines; n > 10 {
			t.Errorf("%d log lines for %d failed reads", n, o.eio.Load())
		}
		if code, body := d.probe(t, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "breaker open") {
			t.Errorf("/healthz with the breaker open: %d %s", code, body)
		}
		if code, _ := d.probe(t, "/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz with the breaker open: %d", code)
		}
		checkSizes(t, d.dir)
		t.Logf("replaced: %d files read whole (cached before), %d EIO", o.ok.Load(), o.eio.Load())
	})
}

// TestOutageRiddenOut: a storage outage of 15 s under --read-timeout 60s delays reads and
// fails none of them.
func TestOutageRiddenOut(t *testing.T) {
	skipShort(t)
	const outage, timeout = 15 * time.Second, 60 * time.Second
	w := newWorld(t)
	d := w.mount(t, timeout)
	w.px.Always(faultproxy.Close)
	time.AfterFunc(outage, func() { w.px.Always(faultproxy.None) })
	start := time.Now()
	var o outcome
	readAll(t, d.dir, 16, &o)
	if o.eio.Load() != 0 {
		t.Errorf("%d reads failed in an outage of %v with a timeout of %v", o.eio.Load(), outage, timeout)
	}
	if took := time.Since(start); took < outage {
		t.Errorf("read everything in %v during an outage of %v: the outage did not happen", took, outage)
	}
	checkSizes(t, d.dir)
	if code, body := d.probe(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the outage: %d %s", code, body)
	}
	t.Logf("outage %v, timeout %v: %d files read whole in %v", outage, timeout, o.ok.Load(), time.Since(start).Round(time.Millisecond))
}

// TestBackgroundFetchServesWithoutStorage: with the defaults, a mount whose image fits its
// caches (memory and a private disk cache) fetches it whole in the background; once that is
// done every file reads whole with storage gone, and the private cache directory goes away
// with the mount.
func TestBackgroundFetchServesWithoutStorage(t *testing.T) {
	skipShort(t)
	w := newWorld(t)
	cacheBase := t.TempDir()
	t.Setenv("ENCFS_CACHE_DIR", cacheBase)
	d := w.mount(t, 5*time.Second, "--prefetch", "auto")
	deadline := time.Now().Add(60 * time.Second)
	for !d.logged("background fetch: done") {
		if time.Now().After(deadline) {
			t.Fatalf("no background fetch after 60s:\n%s", d.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	requests := w.px.Requests()
	w.px.Always(faultproxy.Close)
	defer w.px.Always(faultproxy.None)
	dropCaches(t)
	var o outcome
	readAll(t, d.dir, 8, &o)
	if o.eio.Load() != 0 || o.ok.Load() != int64(len(sizes)) {
		t.Errorf("with storage gone after the background fetch: %d read whole, %d EIO", o.ok.Load(), o.eio.Load())
	}
	if n := w.px.Requests() - requests; n != 0 {
		t.Errorf("%d requests to storage after the background fetch", n)
	}
	if entries, _ := os.ReadDir(cacheBase); len(entries) != 1 {
		t.Errorf("want one private cache directory, have %v", entries)
	}
	d.stop(t)
	if entries, _ := os.ReadDir(cacheBase); len(entries) != 0 {
		t.Errorf("the private cache directory outlived the mount: %v", entries)
	}
}
