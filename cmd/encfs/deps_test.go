package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBinaryDependencies keeps the sidecar binary small: it is measured into the confidential
// container policy, so whatever it links is attack surface and policy churn. Apache Arrow,
// flatbuffers, zstd and lz4 came in through azblob/container (blob queries) for one
// create-container call; blobio/azure now sends that call itself.
func TestBinaryDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/encfs/encfs/cmd/encfs").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	for _, dep := range deps {
		for _, banned := range []string{
			"github.com/apache/arrow-go",
			"github.com/google/flatbuffers",
			"github.com/klauspost/compress",
			"github.com/pierrec/lz4",
			"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container",
		} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the encfs binary links %s", dep)
			}
		}
	}
}
