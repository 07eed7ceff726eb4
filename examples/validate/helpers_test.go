package validate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// root is the encfs repository; go test runs in examples/validate.
const root = "../.."

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return b
}

// hasSeq reports whether args holds want as a contiguous run.
func hasSeq(args []string, want ...string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		ok := true
		for j, w := range want {
			if args[i+j] != w {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// flagValue returns the value of --name in args (as "--name V" or "--name=V").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// isEncfsMount reports whether a container's argv (entrypoint and arguments together) runs
// `encfs mount --config-env EncfsSideCarArgs`.
func isEncfsMount(argv []string) bool {
	if len(argv) > 0 && filepath.Base(argv[0]) == "encfs" {
		argv = argv[1:]
	}
	return len(argv) > 0 && argv[0] == "mount" && hasSeq(argv, "--config-env", "EncfsSideCarArgs")
}

// sidecarConfig is the part of examples/config/encfs-sidecar-args.json the templates must agree with.
type sidecarConfig struct {
	AzureFilesystems []struct {
		MountPoint     string `json:"mount_point"`
		PublishSymlink bool   `json:"publish_symlink"`
	} `json:"azure_filesystems"`
}
