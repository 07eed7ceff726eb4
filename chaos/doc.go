// Package chaos holds the storage chaos tests of encfs: the real `encfs mount` binary serving
// an image from Azurite through a fault-injecting proxy (connections closed without an answer,
// resets, cut bodies, throttling, server errors, stalls, an outage, a replaced blob), read by
// verifying readers. Each fault must give the right bytes or EIO within the read timeout, never
// a short successful read or a truncated file, and the daemon must stay within its memory
// budget. The package has no code of its own; the tests are in chaos_test.go.
package chaos
