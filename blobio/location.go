package blobio

import (
	"net/url"
	"strings"

	"github.com/encfs/encfs/internal/redact"
)

// IsRemote reports whether location is a URL rather than a local path.
func IsRemote(location string) bool {
	for _, p := range []string{"https://", "http://", "azure://", "azure+https://", "azure+http://"} {
		if len(location) >= len(p) && strings.EqualFold(location[:len(p)], p) {
			return true
		}
	}
	return false
}

// Redact removes secret query values, bearer tokens and account keys from s.
func Redact(s string) string { return redact.String(s) }

// Display names an image location in messages: a local path as it is; a URL without its query
// string, followed for a SAS by its permissions and expiry. It never shows a secret, and it is
// short enough to repeat in a log line.
func Display(location string) string {
	if !IsRemote(location) {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		return redact.String(location)
	}
	return redact.DisplayURL(u)
}
