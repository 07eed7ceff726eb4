package validate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// requireFUSE skips a test that needs to mount, saying why, or fails it in CI (CI=true), where
// the mount must happen.
func requireFUSE(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "no /dev/fuse"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot mount FUSE (%s), and CI=true requires it", why)
	}
	t.Skipf("cannot mount FUSE: %s", why)
}

// run runs a command and fails the test with its output if it fails.
func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// liveMetricNames builds the real encfs binary, packs a small image, and runs `encfs mount
// --config` on it as a sidecar would, with three filesystems: one streamed over HTTP with an
// on-disk cache, which mounts and is read, one with the wrong key, which fails, and a
// read-write volume in a local file, which is written and flushed. It scrapes
// /metrics and returns every series name the scrape holds (a summary's NAME_sum and
// NAME_count, a histogram's NAME_bucket too), then stops the sidecar, which unmounts.
func liveMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	requireFUSE(t)
	dir := t.TempDir()
	repo, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "encfs")
	run(t, repo, "go", "build", "-o", bin, "./cmd/encfs")

	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("encfs metrics "), 300_000) // ~4 MiB: several chunks
	for name, data := range map[string][]byte{"big.bin": big, "hello.txt": []byte("hello\n"), "sub/small.txt": []byte("small\n")} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key, wrongKey, img := filepath.Join(dir, "release.key"), filepath.Join(dir, "other.key"), filepath.Join(dir, "data.img")
	run(t, dir, bin, "keygen", "--out", key)
	run(t, dir, bin, "keygen", "--out", wrongKey)
	run(t, dir, bin, "--log-format", "text", "pack", "--key-file", key, src, img)

	// The image over plain HTTP with Range and an ETag, as a generic HTTPS source serves it.
	imgData, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "data.img", time.Unix(1_700_000_000, 0), bytes.NewReader(imgData))
	}))
	defer srv.Close()

	shared := filepath.Join(dir, "mnt")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	// A read-write volume in a local file, for the volume metrics.
	vol := filepath.Join(dir, "data.vol")
	run(t, dir, bin, "--log-format", "text", "volume", "create", "--key-file", key, "--size", "64M", vol)
	good, bad, rw := filepath.Join(shared, "data"), filepath.Join(shared, "refused"), filepath.Join(dir, "rw")
	cfg := map[string]any{"azure_filesystems": []map[string]any{
		{"mount_point": good, "azure_url": srv.URL + "/data.img", "key_file": key, "publish_symlink": true,
			"disk_cache_dir": filepath.Join(dir, "cache"), "disk_cache_size": "64MiB"},
		{"mount_point": bad, "azure_url": img, "key_file": wrongKey},
		{"mount_point": rw, "azure_url": vol, "key_file": key, "read_write": true},
	}}
	cfgFile := filepath.Join(dir, "config.json")
	js, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, js, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--log-format", "json", "mount", "--config", cfgFile, "--metrics-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var logs bytes.Buffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving metrics" {
				addr <- rec.Addr
			}
		}
		exited <- cmd.Wait()
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM) // encfs unmounts on SIGTERM
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		// Belt and braces: nothing may stay mounted under the test's directory.
		exec.Command("umount", "-l", filepath.Join(shared, ".filesystem-0")).Run()
		exec.Command("umount", "-l", rw).Run()
	}
	defer stop()

	var base string
	select {
	case base = <-addr:
		base = "http://" + base
	case err := <-exited:
		t.Fatalf("encfs mount exited before serving metrics: %v\n%s", err, logs.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("encfs mount did not serve metrics within 90 s:\n%s", logs.String())
	}

	// Wait for filesystem 0 to be mounted and 1 to have failed.
	var text string
	for deadline := time.Now().Add(60 * time.Second); ; {
		text = scrape(t, base+"/metrics")
		if strings.Contains(text, `encfs_filesystem_state{filesystem="0",mount_point="`+good+`",state="mounted"} 1`) &&
			strings.Contains(text, `encfs_filesystem_state{filesystem="1",mount_point="`+bad+`",state="failed"} 1`) &&
			strings.Contains(text, `encfs_filesystem_state{filesystem="2",mount_point="`+rw+`",state="mounted"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("filesystem 0 or 2 not mounted or 1 not failed after 60 s; /metrics:\n%s\nlog:\n%s", text, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Read through the mount so that the read path's counters move.
	for _, name := range []string{"big.bin", "hello.txt", "sub/small.txt"} {
		got, err := os.ReadFile(filepath.Join(good, name))
		want, _ := os.ReadFile(filepath.Join(src, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("reading %s through the mount: %v (%d bytes, want %d)", name, err, len(got), len(want))
		}
	}
	// Write durably to the volume so that its write and commit counters move.
	if f, err := os.Create(filepath.Join(rw, "written")); err != nil {
		t.Fatal(err)
	} else {
		_, err := f.Write(big)
		if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
			t.Fatalf("writing to the volume: %v", err)
		}
	}
	text = scrape(t, base+"/metrics")
	stop()

	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		}
	}
	if !names["encfs_read_bytes_total"] || !names["process_resident_memory_bytes"] {
		t.Fatalf("the scrape lacks encfs_read_bytes_total or process_resident_memory_bytes:\n%s", text)
	}
	return names
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s", url, err, resp.Status)
	}
	return string(b)
}

// sortedKeys is for messages.
func sortedKeys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, " ")
}
