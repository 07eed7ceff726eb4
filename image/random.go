package image

import (
	"crypto/rand"
	"io"
)

// randomSource supplies the master key, salt, series and UUID of new images. Only tests
// replace it (export_test.go), to pack the committed test vectors reproducibly; no option or
// flag reaches it, so a real packing always gets fresh keys.
var randomSource io.Reader = rand.Reader

func randomBytes(b []byte) {
	if _, err := io.ReadFull(randomSource, b); err != nil {
		panic("image: random source failed: " + err.Error()) // crypto/rand does not fail
	}
}
