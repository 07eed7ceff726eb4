package volume

import (
	"io"
	"time"
)

// setRandomForTest makes new volumes take their master key, salt and UUID from r and their
// creation time from t, for the reproducible test vector. It returns a function that restores
// crypto/rand and the clock. Tests that call it must not run in parallel with tests that create.
func setRandomForTest(r io.Reader, t time.Time) (restore func()) {
	savedR, savedNow := randomSource, now
	randomSource, now = r, func() time.Time { return t }
	return func() { randomSource, now = savedR, savedNow }
}
