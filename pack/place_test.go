package pack

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPlaceNoReplace: the last step of a pack that must not replace a file fails if the name
// was taken while the image was being written, and leaves both files.
func TestPlaceNoReplace(t *testing.T) {
	dir := t.TempDir()
	tmp, taken := filepath.Join(dir, "tmp"), filepath.Join(dir, "taken")
	os.WriteFile(tmp, []byte("image"), 0o644)
	os.WriteFile(taken, []byte("precious"), 0o644)
	if err := place(tmp, taken, true); !errors.Is(err, ErrExists) {
		t.Fatalf("place onto a taken name: %v", err)
	}
	if b, _ := os.ReadFile(taken); string(b) != "precious" {
		t.Error("the existing file was replaced")
	}
	free := filepath.Join(dir, "free")
	if err := place(tmp, free, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(free); string(b) != "image" {
		t.Error("the image is not at its name")
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Error("the temporary name is left")
	}
}
