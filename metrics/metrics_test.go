package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
)

func TestHandler(t *testing.T) {
	c := NewCollector()
	remove := c.Add("/mnt/a", func() Stats {
		return Stats{FS: encfs.Stats{BytesRead: 1234, ReadErrors: 3, IntegrityErrors: 2, FilesRead: 5},
			Image: image.Stats{CacheHits: 7, IntegrityFailures: 2},
			Source: &blobio.Stats{BytesFetched: 4096, FetchLatencySum: time.Second, FetchLatencyCount: 4, Fetches: 11, RangeFetches: 7, Coalesced: 5, BackgroundFetches: 2,
				FetchErrors: 3, FetchErrorsByCause: [7]int64{2, 0, 0, 1}, DiskHits: 9, DiskMisses: 4, DiskWrites: 4,
				DiskErrors: 1, DiskCorrupt: 1, DiskBytes: 1 << 20},
			Health: &blobio.Health{State: blobio.StateBroken}}
	})
	lost := false
	removeVol := c.Add("/mnt/v", func() Stats {
		return Stats{Volume: &VolumeStats{Writes: 3, BytesWritten: 12288, WriteErrors: 1, Flushes: 5, FlushErrors: 2, Commits: 4,
			CommitFailures: 1, CommitTime: 2 * time.Second, WriteBack: &WriteBackStats{DirtyBytes: 8192, WriteOutBytes: 4096, WriteOutErrors: 1, Waits: 6},
			WriterLockHeld: &lost}}
	})
	defer removeVol()
	c.SetMemoryBudget(512 << 20)
	ready, healthy := errors.New("storage outage"), errors.New("not mounted")
	srv := httptest.NewServer(Handler(NewRegistry(c), Probes{Ready: func() error { return ready }, Healthy: func() error { return healthy }}))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "storage outage") {
		t.Errorf("/readyz before ready: %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz while unhealthy: %d", code)
	}
	ready, healthy = nil, nil
	for _, p := range []string{"/readyz", "/healthz"} {
		if code, _ := get(p); code != http.StatusOK {
			t.Errorf("%s: %d", p, code)
		}
	}
	_, body := get("/metrics")
	for _, want := range []string{
		`encfs_read_bytes_total{mount="/mnt/a"} 1234`,
		`encfs_read_errors_total{cause="integrity",mount="/mnt/a"} 2`,
		`encfs_read_errors_total{cause="io",mount="/mnt/a"} 1`,
		`encfs_integrity_failures_total{mount="/mnt/a"} 2`,
		`encfs_cache_hits_total{cache="plaintext",mount="/mnt/a"} 7`,
		`encfs_fetch_bytes_total{mount="/mnt/a"} 4096`,
		`encfs_fetch_duration_seconds_sum{mount="/mnt/a"} 1`,
		`encfs_fetch_duration_seconds_count{mount="/mnt/a"} 4`,
		`encfs_fetch_requests_total{kind="chunk",mount="/mnt/a"} 4`,
		`encfs_fetch_requests_total{kind="range",mount="/mnt/a"} 7`,
		`encfs_fetch_ranges_coalesced_total{mount="/mnt/a"} 5`,
		`encfs_background_fetches_total{mount="/mnt/a"} 2`,
		`encfs_files_read_total{mount="/mnt/a"} 5`,
		`encfs_fetch_errors_total{cause="unreachable",mount="/mnt/a"} 2`,
		`encfs_fetch_errors_total{cause="changed",mount="/mnt/a"} 1`,
		`encfs_fetch_errors_total{cause="timeout",mount="/mnt/a"} 0`,
		`encfs_cache_hits_total{cache="disk",mount="/mnt/a"} 9`,
		`encfs_cache_misses_total{cache="disk",mount="/mnt/a"} 4`,
		`encfs_disk_cache_writes_total{mount="/mnt/a"} 4`,
		`encfs_disk_cache_errors_total{mount="/mnt/a"} 1`,
		`encfs_disk_cache_corrupt_total{mount="/mnt/a"} 1`,
		`encfs_disk_cache_bytes{mount="/mnt/a"} 1.048576e+06`,
		`encfs_storage_breaker_open{mount="/mnt/a"} 1`,
		`encfs_storage_outage{mount="/mnt/a"} 0`,
		`encfs_memory_budget_bytes 5.36870912e+08`,
		`process_resident_memory_bytes`,
		`encfs_volume_write_bytes_total{mount="/mnt/v"} 12288`,
		`encfs_volume_write_requests_total{mount="/mnt/v"} 3`,
		`encfs_volume_write_errors_total{mount="/mnt/v"} 1`,
		`encfs_volume_flush_requests_total{mount="/mnt/v"} 5`,
		`encfs_volume_flush_errors_total{mount="/mnt/v"} 2`,
		`encfs_volume_commit_duration_seconds_count{mount="/mnt/v"} 4`,
		`encfs_volume_commit_duration_seconds_sum{mount="/mnt/v"} 2`,
		`encfs_volume_commit_failures_total{mount="/mnt/v"} 1`,
		`encfs_volume_writeback_dirty_bytes{mount="/mnt/v"} 8192`,
		`encfs_volume_writeback_bytes_total{mount="/mnt/v"} 4096`,
		`encfs_volume_writeback_errors_total{mount="/mnt/v"} 1`,
		`encfs_volume_writeback_waits_total{mount="/mnt/v"} 6`,
		`encfs_volume_writer_lock_held{mount="/mnt/v"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, `encfs_volume_write_bytes_total{mount="/mnt/a"}`) {
		t.Error("an image mount reports volume metrics")
	}
	remove()
	if _, body := get("/metrics"); strings.Contains(body, "/mnt/a") {
		t.Error("removed mount still reported")
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{":9090": "127.0.0.1:9090", "9090": "127.0.0.1:9090",
		"0.0.0.0:9090": "0.0.0.0:9090", "[::1]:0": "[::1]:0", "localhost:1": "localhost:1"} {
		if got := listenAddr(in); got != want {
			t.Errorf("listenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
