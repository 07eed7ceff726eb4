package image

import "io"

// SetRandomForTest makes new images take their master key, salt, series and UUID from r, for
// the reproducible test vectors. It returns a function that restores crypto/rand. Tests that
// call it must not run in parallel with tests that pack.
func SetRandomForTest(r io.Reader) (restore func()) {
	saved := randomSource
	randomSource = r
	return func() { randomSource = saved }
}
