package fstest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Binary builds the encfs command into a temp dir of t and returns its path. It builds with
// the go command on PATH and the caller's environment, so GOFLAGS (-overlay, -race) carries
// over; the build cache makes every build after the first one a link.
func Binary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "encfs")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/encfs/encfs/cmd/encfs").CombinedOutput()
	if err != nil {
		t.Fatalf("build encfs: %v\n%s", err, out)
	}
	return bin
}
