package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes, written in JSON as a number of bytes or a string with a unit:
// "512MiB", "2GiB", "64M" (K, M, G, T are powers of 1024 as well; KB, MB, GB, TB powers of 1000).
type ByteSize int64

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseByteSize reads "123", "64MiB", "1.5G" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	num := s
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) {
			num, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*float64(mult) >= 1<<62 {
		return 0, fmt.Errorf("size %q: want bytes or a number with a unit such as 512MiB or 2GiB", s)
	}
	return ByteSize(f * float64(mult)), nil
}

// UnmarshalJSON accepts a non-negative integer or a size string.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		v, err := ParseByteSize(s)
		*b = v
		return err
	}
	var n int64
	if err := json.Unmarshal(data, &n); err != nil || n < 0 {
		return fmt.Errorf("want a byte count or a size string such as \"512MiB\", got %s", clip(data))
	}
	*b = ByteSize(n)
	return nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
