package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/internal/testtree"
)

// runEnv runs encfs with extra environment variables and returns standard output, standard
// error and the exit code.
func runEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(encfsBin, args...)
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// containerSASQuery signs a service SAS for a whole Azurite container.
func containerSASQuery(t *testing.T, containerName, perms string) string {
	t.Helper()
	v := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, StartTime: time.Now().Add(-time.Hour).UTC(),
		ExpiryTime: time.Now().Add(time.Hour).UTC(), Permissions: perms, ContainerName: containerName}
	k, err := blob.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := v.SignWithSharedKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// TestSecretsOffTheCommandLine uploads and reads an image with the SAS URL in a file
// (--url-file) and in ENCFS_URL, and the connection string in a file: no warning, and the
// signature never printed. A SAS given as an argument works but warns.
func TestSecretsOffTheCommandLine(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	dir := t.TempDir()
	k, img := filepath.Join(dir, "k"), filepath.Join(dir, "img")
	mustRun(t, "keygen", "--out", k)
	mustRun(t, "pack", "--key-file", k, testtree.Build(t, filepath.Join(dir, "src")), img)
	query := containerSASQuery(t, "images", "rcw")
	sig := query[strings.Index(query, "sig=")+4:]
	sig, _, _ = strings.Cut(sig, "&")
	sasURL := az.BlobURL("images", "a.img") + "?" + query
	urlFile := filepath.Join(dir, "url")
	if err := os.WriteFile(urlFile, []byte(sasURL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(name, stdout, stderr string, code int, warn bool) {
		t.Helper()
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", name, code, stdout, stderr)
		}
		if strings.Contains(stdout+stderr, sig) {
			t.Errorf("%s printed the SAS signature", name)
		}
		if got := strings.Contains(stderr, "can be read by every local user"); got != warn {
			t.Errorf("%s: warning about the SAS argument: %v, want %v\n%s", name, got, warn, stderr)
		}
	}

	o, e, c := runEnv(t, nil, "upload", "-q", "--url-file", urlFile, img)
	check("upload --url-file", o, e, c, false)
	if !strings.Contains(o, "uploaded") {
		t.Errorf("upload --url-file: %s", o)
	}
	o, e, c = runEnv(t, []string{"ENCFS_URL=" + sasURL}, "upload", "-q", img)
	check("upload with ENCFS_URL", o, e, c, false)
	if !strings.Contains(o, "already holds this image") {
		t.Errorf("upload with ENCFS_URL: %s", o)
	}
	o, e, c = runEnv(t, []string{"ENCFS_URL=" + sasURL}, "verify", "--key-file", k)
	check("verify with ENCFS_URL", o, e, c, false)
	o, e, c = runEnv(t, nil, "cat", "--key-file", k, "--url-file", urlFile, "small/b.txt")
	check("cat --url-file", o, e, c, false)
	if o != string(testtree.Content("small/b.txt", 2000)) {
		t.Error("cat --url-file returned different bytes")
	}
	o, e, c = runEnv(t, nil, "inspect", sasURL)
	check("inspect SAS-URL", o, e, c, true)

	connFile := filepath.Join(dir, "conn")
	if err := os.WriteFile(connFile, []byte(az.ConnectionString+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, e, c = runEnv(t, nil, "ls", "--key-file", k, "--connection-string-file", connFile, az.BlobURL("images", "a.img"), "small")
	check("ls --connection-string-file", o, e, c, false)
	if !strings.Contains(o, "a.txt") {
		t.Errorf("ls: %s", o)
	}

	_, e, c = runEnv(t, []string{"ENCFS_URL="}, "verify", "--key-file", k)
	if c == 0 || !strings.Contains(e, "--url-file") {
		t.Errorf("verify without a location: exit %d\n%s", c, e)
	}
}

// TestSASCommand makes SAS URLs without the az CLI, signed for Azurite's development account
// from UseDevelopmentStorage=true, and uses them: a container SAS to upload, a blob SAS to
// read, neither with any other credential.
func TestSASCommand(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	dir := t.TempDir()
	k, img := filepath.Join(dir, "k"), filepath.Join(dir, "img")
	mustRun(t, "keygen", "--out", k)
	mustRun(t, "pack", "--key-file", k, testtree.Build(t, filepath.Join(dir, "src")), img)
	u := az.BlobURL("images", "model.img")
	dev := []string{"AZURE_STORAGE_CONNECTION_STRING=UseDevelopmentStorage=true"}
	none := []string{"AZURE_STORAGE_CONNECTION_STRING="}

	upURL, readURL := filepath.Join(dir, "up.url"), filepath.Join(dir, "read.url")
	if o, e, c := runEnv(t, dev, "sas", "--container", "--permissions", "rcw", "--expires", "1h", "--out", upURL, u); c != 0 {
		t.Fatalf("sas: exit %d\n%s%s", c, o, e)
	}
	if st, err := os.Stat(upURL); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("--out file: %v, %v", st, err)
	}
	if o, e, c := runEnv(t, none, "upload", "-q", "--url-file", upURL, img); c != 0 {
		t.Fatalf("upload with the made SAS: exit %d\n%s%s", c, o, e)
	}
	o, e, c := runEnv(t, dev, "sas", u)
	if c != 0 || !strings.Contains(o, "sp=r&") || !strings.Contains(o, "sr=b") {
		t.Fatalf("sas to stdout: exit %d\n%s%s", c, o, e)
	}
	os.WriteFile(readURL, []byte(o), 0o600)
	if o, e, c := runEnv(t, none, "verify", "--key-file", k, "--url-file", readURL); c != 0 || !strings.Contains(o, "OK") {
		t.Fatalf("verify with the made SAS: exit %d\n%s%s", c, o, e)
	}
	_, e, _ = runEnv(t, none, "sas", u)
	if !strings.Contains(e, "AZURE_STORAGE_CONNECTION_STRING") {
		t.Errorf("sas without a key: %s", e)
	}
}
