package image_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/encfs/encfs/image"
)

// recordingRandom hands out 0xA5 bytes and keeps every buffer it filled, so a test can look
// at the writer's master key (the first buffer filled) after NewWriter returns.
type recordingRandom struct{ filled [][]byte }

func (r *recordingRandom) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xA5
	}
	r.filled = append(r.filled, p)
	return len(p), nil
}

// TestWriterClearsMasterKey: the master key leaves no copy in memory when NewWriter fails,
// whatever the error, nor once it has wrapped the key into the keyslots and derived the
// working keys from it.
func TestWriterClearsMasterKey(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	for name, c := range map[string]struct {
		opts    image.WriterOptions
		wantErr string
	}{
		"short release key": {image.WriterOptions{ReleaseKeys: [][]byte{k1, k2[:16]}}, "release key 2 is 16 bytes"},
		"key given twice":   {image.WriterOptions{ReleaseKeys: [][]byte{k1, k1}}, "given twice"},
		"no temp dir":       {image.WriterOptions{ReleaseKeys: [][]byte{k1}, TempDir: filepath.Join(t.TempDir(), "missing")}, "leaf hash spool"},
		"success":           {image.WriterOptions{ReleaseKeys: [][]byte{k1, k2}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			rec := &recordingRandom{}
			restore := image.SetRandomForTest(rec)
			defer restore()
			f, err := os.Create(filepath.Join(t.TempDir(), "img"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w, err := image.NewWriter(f, c.opts)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("NewWriter: %v, want an error with %q", err, c.wantErr)
			}
			if w != nil {
				defer w.Abort()
			}
			if len(rec.filled) == 0 || len(rec.filled[0]) != image.MasterKeySize {
				t.Fatalf("the first random bytes drawn were not the master key: %d buffers", len(rec.filled))
			}
			if master := rec.filled[0]; !bytes.Equal(master, make([]byte, image.MasterKeySize)) {
				t.Fatalf("master key still in memory after NewWriter: %x", master)
			}
		})
	}
}
