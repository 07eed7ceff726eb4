package retry

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxAfter caps a server's Retry-After, so that a hostile or confused server cannot park a
// client; the policy's deadline applies on top.
const MaxAfter = 5 * time.Minute

// After reads the delay a server asked for: Azure's x-ms-retry-after-ms or retry-after-ms
// (milliseconds) first, then Retry-After as seconds or an HTTP date (RFC 9110 10.2.3), relative
// to now. It returns 0 when there is none or it cannot be parsed, and at most MaxAfter.
func After(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	for _, k := range []string{"x-ms-retry-after-ms", "retry-after-ms"} {
		if v := strings.TrimSpace(h.Get(k)); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
				return min(time.Duration(min(ms, int64(MaxAfter/time.Millisecond)))*time.Millisecond, MaxAfter)
			}
		}
	}
	return ParseRetryAfter(h.Get("Retry-After"), now)
}

// ParseRetryAfter parses a Retry-After value: delay-seconds or an HTTP date, relative to now.
// It returns 0 for an empty, invalid or past value and caps the result at MaxAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		if strings.Trim(v, "0123456789") != "" {
			return 0
		}
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s > int64(MaxAfter/time.Second) {
			return MaxAfter // an all-digit value too large to parse is a very long delay
		}
		return time.Duration(s) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), MaxAfter)
}
