package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
)

// The CLI tests run the real binary, built once, as a user would.
var encfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "encfs-cli-")
	if err != nil {
		panic(err)
	}
	encfsBin = filepath.Join(dir, "encfs")
	if out, err := exec.Command("go", "build", "-o", encfsBin, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("build encfs: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs encfs and returns its combined output and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(encfsBin, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, code := run(t, args...)
	if code != 0 {
		t.Fatalf("encfs %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func expectFail(t *testing.T, want string, args ...string) string {
	t.Helper()
	out, code := run(t, args...)
	if code == 0 || !strings.Contains(out, want) {
		t.Fatalf("encfs %s: exit %d, want non-zero with %q in:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "k")
	out := mustRun(t, "keygen", "--out", k)
	st, err := os.Stat(k)
	if err != nil || st.Size() != 32 || st.Mode().Perm() != 0o600 || !strings.Contains(out, "fingerprint") {
		t.Fatalf("key file %v %v, output %q", st, err, out)
	}
	before, _ := os.ReadFile(k)
	expectFail(t, "already exists", "keygen", "--out", k)
	if after, _ := os.ReadFile(k); string(after) != string(before) {
		t.Fatal("keygen overwrote an existing key")
	}
	if out := mustRun(t, "key", "fingerprint", k); strings.Contains(out, "accessible to its group") {
		t.Errorf("warning for a private key file:\n%s", out)
	}
	os.Chmod(k, 0o644)
	if out := mustRun(t, "key", "fingerprint", k); !strings.Contains(out, "accessible to its group or other users") {
		t.Errorf("no warning for a world-readable key file:\n%s", out)
	}
}

func TestPackInspectVerifyBrowse(t *testing.T) {
	dir := t.TempDir()
	src := testtree.Build(t, filepath.Join(dir, "src"))
	k, k2 := filepath.Join(dir, "k"), filepath.Join(dir, "k2")
	mustRun(t, "keygen", "--out", k)
	mustRun(t, "keygen", "--out", k2)
	img := filepath.Join(dir, "img")
	mustRun(t, "pack", "--key-file", k, src, img)

	out := mustRun(t, "inspect", img)
	for _, want := range []string{"uuid:", "generation:", "integrity root:", "keyslot 0:"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "files:") {
		t.Error("inspect without a key shows index counts")
	}
	if out := mustRun(t, "inspect", "--key-file", k, img); !strings.Contains(out, "files:") {
		t.Errorf("inspect with a key lacks counts:\n%s", out)
	}
	mustRun(t, "verify", "--key-file", k, img)
	if out := mustRun(t, "ls", "--key-file", k, img, "small"); !strings.Contains(out, "hardlink-b4097") || !strings.Contains(out, "a.txt") {
		t.Errorf("ls small:\n%s", out)
	}
	if out := mustRun(t, "ls", "--key-file", k, img, "-R"); !strings.Contains(out, "/link-rel -> small/a.txt") {
		t.Errorf("ls -R:\n%s", out)
	}
	if out := mustRun(t, "cat", "--key-file", k, img, "small/b.txt"); out != string(testtree.Content("small/b.txt", 2000)) {
		t.Error("cat returned different bytes")
	}

	wrong := expectFail(t, "fingerprint", "ls", "--key-file", k2, img)
	if !strings.Contains(wrong, "wrong key") {
		t.Errorf("wrong-key message: %s", wrong)
	}
	expectFail(t, "not an encfs image", "inspect", k)
	os.WriteFile(filepath.Join(dir, "short"), []byte("ENCFSIMG"), 0o644)
	expectFail(t, "truncated", "inspect", filepath.Join(dir, "short"))

	// Rotate: add k2, remove k.
	fp := func(key string) string { b, _ := os.ReadFile(key); return image.Fingerprint(b) }
	mustRun(t, "key", "add-slot", "--key-file", k, "--new-key-file", k2, img)
	if out := mustRun(t, "key", "remove-slot", "--key-file", k2, "--fingerprint", fp(k), img); !strings.Contains(out, "does not revoke") {
		t.Errorf("remove-slot does not say that it revokes nothing:\n%s", out)
	}
	mustRun(t, "verify", "--key-file", k2, img)
	expectFail(t, "wrong key", "verify", "--key-file", k, img)
	expectFail(t, "only keyslot", "key", "remove-slot", "--key-file", k2, "--fingerprint", fp(k2), img)

	// A flipped data byte: verify names the blocks of the failed unit.
	b, _ := os.ReadFile(img)
	b[image.HeaderSize+100] ^= 1
	os.WriteFile(img, b, 0o644)
	expectFail(t, fmt.Sprintf("integrity check failed: content blocks 0..%d", image.BlocksPerUnit-1), "verify", "--key-file", k2, img)
}

// TestSeriesAndSigning: keygen --signing-key, pack --sign-key, the next generation with
// --previous (same series, generation one higher), and what inspect and verify show.
func TestSeriesAndSigning(t *testing.T) {
	dir := t.TempDir()
	src := testtree.Build(t, filepath.Join(dir, "src"))
	k, sk := filepath.Join(dir, "k"), filepath.Join(dir, "sign.key")
	mustRun(t, "keygen", "--out", k)
	out := mustRun(t, "keygen", "--signing-key", "--out", sk)
	i := strings.Index(out, "public key ")
	if i < 0 {
		t.Fatalf("keygen --signing-key prints no public key: %q", out)
	}
	pub := strings.Fields(out[i+len("public key "):])[0]
	pub = strings.TrimSuffix(pub, ")")
	v1, v2 := filepath.Join(dir, "v1.img"), filepath.Join(dir, "v2.img")
	mustRun(t, "pack", "--key-file", k, "--sign-key", sk, "--generation", "4", src, v1)
	mustRun(t, "pack", "--key-file", k, "--sign-key", sk, "--previous", v1, src, v2)
	h1, h2 := headerOf(t, v1), headerOf(t, v2)
	if h1.Series != h2.Series || h2.Generation != 5 || h1.SignerHex() != pub || !h2.SignedBy(h2.Signer[:]) {
		t.Fatalf("series %s/%s, generation %d, signer %s (keygen printed %s)", h1.SeriesHex(), h2.SeriesHex(), h2.Generation, h1.SignerHex(), pub)
	}
	out = mustRun(t, "inspect", v2)
	for _, want := range []string{"series:          " + h2.SeriesHex() + " (unauthenticated", "signer:          " + pub} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, "verify", "--key-file", k, v2)
	for _, want := range []string{"integrity root: " + h2.RootHex(), "series:         " + h2.SeriesHex(), "generation:     5", "signature valid: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify lacks %q:\n%s", want, out)
		}
	}
	expectFail(t, "is not above generation 5", "pack", "--key-file", k, "--previous", v2, "--generation", "5", src, filepath.Join(dir, "v3.img"))
	expectFail(t, "is not a series id", "pack", "--key-file", k, "--series", "abc", src, filepath.Join(dir, "v3.img"))
	// Rekey: same files, new keys, same series, next generation, signed again.
	v3 := filepath.Join(dir, "v3.img")
	out = mustRun(t, "rekey", "--key-file", k, "--sign-key", sk, v2, v3)
	h3 := headerOf(t, v3)
	if h3.Series != h2.Series || h3.Generation != 6 || h3.Salt == h2.Salt || !h3.SignedBy(h2.Signer[:]) || !strings.Contains(out, h3.RootHex()) {
		t.Fatalf("rekeyed header: series kept %v, generation %d, new salt %v, signed %v; output %q", h3.Series == h2.Series, h3.Generation, h3.Salt != h2.Salt, h3.SignedBy(h2.Signer[:]), out)
	}
	mustRun(t, "verify", "--key-file", k, v3)
	if a, b := mustRun(t, "ls", "--key-file", k, v2, "-R"), mustRun(t, "ls", "--key-file", k, v3, "-R"); a != b {
		t.Errorf("rekeyed image lists differently:\n%s\n---\n%s", a, b)
	}
	expectFail(t, "already exists", "rekey", "--key-file", k, v2, v3)
	expectFail(t, "needs the series", "mount", "--key-file", k, "--min-generation", "3", v2, filepath.Join(dir, "mnt"))
}

func headerOf(t *testing.T, path string) *image.Header {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := image.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestMountFlagsAndConfigDoNotMix(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(cfg, []byte(`{"azure_filesystems":[]}`), 0o644)
	expectFail(t, "--uid cannot be used with --config", "mount", "--config", cfg, "--uid", "5")
	expectFail(t, "give no IMAGE or MOUNTPOINT", "mount", "--config", cfg, "img", "mnt")
	expectFail(t, "give IMAGE and MOUNTPOINT", "mount", "--key-file", "k", "img")
}
