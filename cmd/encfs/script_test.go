package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/internal/testtree"
)

// runScript runs scripts/upload-image.sh with this test's encfs binary and extra environment.
func runScript(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	script, err := filepath.Abs("../../scripts/upload-image.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{script, "--encfs", encfsBin}, args...)...)
	cmd.Env = append(append(os.Environ(), "AZURE_STORAGE_CONNECTION_STRING=", "ENCFS_URL="), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestUploadScriptAzurite runs the operator's script end to end against Azurite: a bad
// credential stops it before anything is packed; with the account key it packs, uploads and
// makes a read SAS file that the printed mount command uses; with a SAS in ENCFS_URL it works
// without any other credential.
func TestUploadScriptAzurite(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	dir := t.TempDir()
	src := testtree.Build(t, filepath.Join(dir, "src"))
	key, img, readURL := filepath.Join(dir, "k"), filepath.Join(dir, "img"), filepath.Join(dir, "read.url")
	u := az.BlobURL("images", "model.img")

	bad := "AZURE_STORAGE_CONNECTION_STRING=" + strings.Replace(az.ConnectionString, azuritetest.Key, "AAAA"+azuritetest.Key[4:], 1)
	o, e, c := runScript(t, []string{bad}, "--key", key, "--image", img, src, u)
	t.Logf("bad key:\n%s%s", o, e)
	if c == 0 || !strings.Contains(e, "AccountKey") || !strings.Contains(e, "nothing was packed") {
		t.Errorf("a wrong account key: exit %d, want a failure naming the key before packing", c)
	}
	for _, p := range []string{key, img} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was made although the credential was bad", p)
		}
	}

	good := []string{"AZURE_STORAGE_CONNECTION_STRING=" + az.ConnectionString}
	o, e, c = runScript(t, good, "--key", key, "--image", img, "--read-sas", "1", "--read-url-file", readURL, src, u)
	t.Logf("account key:\n%s%s", o, e)
	if c != 0 {
		t.Fatalf("exit %d", c)
	}
	want := "encfs mount --key-file " + key + " --url-file " + readURL + " /mnt/encfs"
	if !strings.Contains(o, want) {
		t.Errorf("the mount command is not %q", want)
	}
	if st, err := os.Stat(readURL); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("read URL file: %v, %v", st, err)
	}
	if o, e, c := runEnv(t, []string{"AZURE_STORAGE_CONNECTION_STRING="}, "verify", "--key-file", key, "--url-file", readURL); c != 0 {
		t.Errorf("the read URL does not open the image: exit %d\n%s%s", c, o, e)
	}

	sasURL := az.BlobURL("images", "other.img") + "?" + containerSASQuery(t, "images", "rcw")
	o, e, c = runScript(t, []string{"ENCFS_URL=" + sasURL}, "--key", key, src)
	t.Logf("SAS in ENCFS_URL:\n%s%s", o, e)
	if c != 0 || !strings.Contains(o, "image uploaded: "+az.BlobURL("images", "other.img")+"\n") {
		t.Errorf("exit %d", c)
	}
	if sig := sasURL[strings.Index(sasURL, "sig=")+4:]; strings.Contains(o+e, strings.SplitN(sig, "&", 2)[0]) {
		t.Error("the script printed the SAS signature")
	}
}
