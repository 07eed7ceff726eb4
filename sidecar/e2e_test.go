package sidecar_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/internal/testtree"
	"github.com/encfs/encfs/keys/skrtest"
	"github.com/encfs/encfs/mount"
	"github.com/encfs/encfs/sidecar"
)

// TestEndToEndAttestedMount is the production path in one test: a configuration document in
// the reference sidecar's shape; the key released by Key Vault after SEV-SNP attestation (fake
// SEV device, test Azure Attestation and Key Vault servers over HTTPS, real azkeys client); the
// image streamed from Azure Blob Storage (Azurite, SAS URL); a real FUSE mount; files read and
// compared with their source. A second filesystem in the same configuration pins another
// integrity root: it is refused, and the first keeps serving.
func TestEndToEndAttestedMount(t *testing.T) {
	fstest.RequireFUSE(t)
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	dir := t.TempDir()
	src := testtree.Build(t, filepath.Join(dir, "src"))
	img := fstest.Pack(t, src, env.ReleaseKey)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	h, err := image.ParseHeader(data)
	if err != nil {
		t.Fatal(err)
	}

	srv := azuritetest.Start(t, azuritetest.Config{})
	srv.CreateContainer(t, "images", false)
	srv.PutBlockBlob(t, "images", "data.img", data, nil)
	blobURL := srv.SAS(t, "images", "data.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))
	u, _ := url.Parse(blobURL)
	sig := u.Query().Get("sig")

	good, refused := filepath.Join(dir, "mnt", "data"), filepath.Join(dir, "mnt", "old")
	os.Mkdir(filepath.Join(dir, "mnt"), 0o755) // the shared volume
	doc := map[string]any{
		"azure_info": map[string]any{"identity": map[string]any{"client_id": ""}},
		"azure_filesystems": []map[string]any{
			{"mount_point": good, "azure_url": blobURL, "azure_url_private": false, "read_write": false,
				"key": env.ConfigKey(), "pinned_root": h.RootHex(), "series": h.SeriesHex(), "min_generation": h.Generation, "publish_symlink": true},
			{"mount_point": refused, "azure_url": blobURL, "azure_url_private": false, "read_write": false,
				"key": env.ConfigKey(), "pinned_root": strings.Repeat("ab", 32)},
		},
	}
	js, _ := json.Marshal(doc)
	c, err := config.Parse(js)
	if err != nil {
		t.Fatal(err)
	}

	logs := new(syncbuf.Buffer)
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	var o sidecar.Options
	env.Customize(&o.KeyRelease)
	specs, err := sidecar.SpecsFromConfig(c, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range specs {
		specs[i].ReadyFile = filepath.Join(dir, "ready-"+filepath.Base(specs[i].Mountpoint))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := new(syncbuf.Buffer)
	done := make(chan error, 1)
	go func() { done <- sidecar.Run(ctx, out, specs, sidecar.RunOptions{}) }()
	waitFor(t, specs[0].ReadyFile, done)

	// Published as the reference sidecar does: the mount lives at <dir>/.filesystem-0 and
	// mount_point is a symlink to it.
	if real, err := filepath.EvalSymlinks(good); err != nil || filepath.Base(real) != ".filesystem-0" {
		t.Fatalf("mount_point resolves to %q (%v), want .../.filesystem-0", real, err)
	}
	testtree.Equal(t, testtree.Snapshot(t, src), testtree.Snapshot(t, good+"/"))
	// The second filesystem is attested and refused on its own schedule: wait for its verdict
	// before stopping, or the stop would cut its key release short.
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(logs.String(), "refused by the deployment's pins"); {
		if time.Now().After(deadline) {
			t.Fatalf("the second filesystem was never refused:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(specs[1].ReadyFile); err == nil {
		t.Error("the filesystem with the wrong pinned root is ready")
	}
	if ms, _ := mount.MountsAt(refused); len(ms) != 0 {
		t.Error("the filesystem with the wrong pinned root was mounted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ms, _ := mount.MountsAt(filepath.Join(dir, "mnt", ".filesystem-0")); len(ms) != 0 {
		t.Fatal("still mounted after the signal")
	}
	if _, err := os.Lstat(good); !os.IsNotExist(err) {
		t.Errorf("the published symlink is still there after unmount: %v", err)
	}
	all := out.String() + logs.String()
	if !strings.Contains(all, "refused by the deployment's pins") {
		t.Errorf("the refusal is not reported:\n%s", all)
	}
	for name, secret := range map[string]string{"SAS signature": sig, "release key": string(env.ReleaseKey)} {
		if secret != "" && strings.Contains(all, secret) {
			t.Errorf("the %s appears in the output or logs", name)
		}
	}
}

// waitFor waits for a ready file, failing early if the mounts ended.
func waitFor(t *testing.T, path string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended before %s appeared: %v", path, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not appear", path)
}
