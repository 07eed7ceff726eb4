package image_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDependencies keeps the image format free of storage: it reads through the Source
// interface it defines, so neither blobio nor any Azure SDK package may be linked into it, and
// outside the standard library it uses only the crypto it needs.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/encfs/encfs/image").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := []string{
		"github.com/encfs/encfs/image",
		"github.com/encfs/encfs/internal/",
		"golang.org/x/crypto/",
		"golang.org/x/sys/",
		"github.com/zeebo/blake3",
		"github.com/klauspost/cpuid/", // blake3's CPU feature detection
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/encfs/encfs/blobio") || strings.HasPrefix(dep, "github.com/Azure/") {
			t.Errorf("image depends on %s: storage belongs above the image format (see image.Source)", dep)
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || dep == strings.TrimSuffix(a, "/") || strings.HasPrefix(dep, a)
		}
		if !ok {
			t.Errorf("image depends on %s, which is not on the list of allowed dependencies", dep)
		}
	}
}
