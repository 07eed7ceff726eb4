package sidecar_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/internal/testtree"
	"github.com/encfs/encfs/keys/skrtest"
	"github.com/encfs/encfs/sidecar"
)

// TestFilesystemStateMetrics runs the sidecar's orchestration with two filesystems: one opened
// with a key file, and one whose key Key Vault refuses because the release policy names another
// container policy (the test Attestation and Key Vault servers, the real azkeys client). Its
// /metrics must say that the first is mounted with its key released, and that the second failed
// with policy_not_met: what the EncfsKeyReleaseRefused alert fires on.
func TestFilesystemStateMetrics(t *testing.T) {
	fstest.RequireFUSE(t)
	env := skrtest.NewEnv(t, skrtest.EnvOptions{PolicyHostData: strings.Repeat("ab", 32)})
	dir := t.TempDir()
	img := fstest.Pack(t, testtree.Build(t, filepath.Join(dir, "src")), env.ReleaseKey)
	keyFile := filepath.Join(dir, "release.key")
	if err := os.WriteFile(keyFile, env.ReleaseKey, 0o600); err != nil {
		t.Fatal(err)
	}
	good, refused := filepath.Join(dir, "mnt", "good"), filepath.Join(dir, "mnt", "refused")
	os.Mkdir(filepath.Join(dir, "mnt"), 0o755)
	js, _ := json.Marshal(map[string]any{"azure_filesystems": []map[string]any{
		{"mount_point": good, "azure_url": img, "key_file": keyFile},
		{"mount_point": refused, "azure_url": img, "key": env.ConfigKey()},
	}})
	c, err := config.Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	var o sidecar.Options
	env.Customize(&o.KeyRelease)
	specs, err := sidecar.SpecsFromConfig(c, o)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(syncbuf.Buffer)
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sidecar.Run(ctx, io.Discard, specs, sidecar.RunOptions{MetricsAddr: "127.0.0.1:0"}) }()

	addrRE := regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)
	want := []string{
		`encfs_filesystem_state{filesystem="0",mount_point="` + good + `",state="mounted"} 1`,
		`encfs_filesystem_key_release{filesystem="0",mount_point="` + good + `",outcome="released"} 1`,
		`encfs_filesystem_state{filesystem="1",mount_point="` + refused + `",state="failed"} 1`,
		`encfs_filesystem_key_release{filesystem="1",mount_point="` + refused + `",outcome="policy_not_met"} 1`,
	}
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s /metrics lacks one of %q:\n%s\nlog:\n%s", want, body, logs.String())
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v\n%s", err, logs.String())
		default:
		}
		m := addrRE.FindStringSubmatch(logs.String())
		if m == nil {
			continue
		}
		resp, err := http.Get("http://" + m[1] + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		all := true
		for _, w := range want {
			all = all && strings.Contains(body, w)
		}
		if all {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
