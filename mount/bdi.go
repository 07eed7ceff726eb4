package mount

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultReadAheadKB is the read_ahead_kb set on every mount. The kernel sizes FUSE reads by
// its readahead window: at the default 128 KiB it asks in 128 KiB requests however large
// max_read is, and each request costs a round trip to the daemon. 4 MiB lets it keep several
// 1 MiB requests in flight on a sequential reader.
const DefaultReadAheadKB = 4096

// bdiFile is the sysfs knob of the backing device of filesystem dev ("major:minor").
func bdiFile(dev string) string { return filepath.Join("/sys/class/bdi", dev, "read_ahead_kb") }

// SetReadAhead sets read_ahead_kb of the filesystem with device number dev ("major:minor").
func SetReadAhead(dev string, kb int) error {
	return os.WriteFile(bdiFile(dev), []byte(strconv.Itoa(kb)), 0)
}

// ReadAhead returns read_ahead_kb of the filesystem with device number dev.
func ReadAhead(dev string) (int, error) {
	b, err := os.ReadFile(bdiFile(dev))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
