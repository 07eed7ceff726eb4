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

// MasterKeyForTest opens the keyslot of releaseKey, as anyone holding that key can: the attack
// tests play key holders and former key holders with it.
func MasterKeyForTest(h *Header, releaseKey []byte) ([]byte, error) {
	m, ok, err := unwrapMasterKey(h, releaseKey)
	if err == nil && !ok {
		err = &WrongKeyError{}
	}
	return m, err
}

// ResealForTest recomputes the header MAC with the header MAC key of master, as a holder of the
// master key can.
func ResealForTest(h *Header, master []byte) {
	k, err := deriveKeys(master, h.Salt[:])
	if err != nil {
		panic(err)
	}
	h.Seal(k.headerMAC)
}
