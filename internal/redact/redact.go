// Package redact keeps credentials out of logs and errors: it removes secret query values
// (SAS signatures, presigned URL signatures, tokens), bearer tokens and account keys from
// text, URLs and error messages, and names a blob URL in messages by what is not secret.
package redact

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// secretParams are query parameters whose values are credentials: Azure SAS signatures, S3
// presigned URL signatures, and generic tokens. Their values never reach logs or errors.
var secretParams = []string{
	"sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
	"x-goog-signature", "x-goog-credential", "signature", "token", "access_token",
}

// secretRE finds secret=VALUE pairs inside arbitrary text (error messages from the HTTP stack
// quote whole URLs) and bearer tokens.
var secretRE = regexp.MustCompile(`(?i)((?:^|[?&;\s"'])(?:` +
	strings.Join(secretParams, "|") + `)=)[^&\s"';]*|(bearer\s+)[A-Za-z0-9._~+/=-]+|(accountkey=)[^;\s"']*`)

// String removes secret query values, bearer tokens and account keys from s.
func String(s string) string {
	return secretRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretRE.FindStringSubmatch(m)
		for _, p := range sub[1:] {
			if p != "" {
				return p + "REDACTED"
			}
		}
		return "REDACTED"
	})
}

// URL returns u as text with the values of secret query parameters replaced, keeping the
// others (a SAS's se= expiry and sp= permissions help when access is refused).
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			for _, s := range secretParams {
				if strings.EqualFold(k, s) {
					q[k] = []string{"REDACTED"}
				}
			}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// DisplayURL names a blob in messages: the URL without its query string (a SAS is long and its
// signature is secret), then the SAS fields that help when access is refused. Snapshot and
// version ids stay: they say which blob.
func DisplayURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	q := u.Query()
	keep := url.Values{}
	for _, k := range []string{"snapshot", "versionid"} {
		if v := q.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	c.RawQuery = keep.Encode()
	s := c.String()
	if q.Get("sig") != "" { // a SAS: its permissions and expiry are not secret
		s += " (SAS sp=" + q.Get("sp")
		if expiry := SASTime(q.Get("se")); !expiry.IsZero() {
			s += fmt.Sprintf(" se=%s", expiry.UTC().Format("2006-01-02T15:04Z"))
		}
		s += ")"
	}
	return s
}

// SASTime reads a SAS time (st=, se=): ISO 8601 in UTC, with or without seconds. It returns
// the zero time for anything else.
func SASTime(v string) time.Time {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	return time.Time{}
}

// Err returns err with its message redacted, or nil. errors.Is and errors.As still see the
// original chain.
func Err(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{msg: String(err.Error()), err: err}
}

// redactedError keeps the chain for errors.Is/As (context.DeadlineExceeded, net errors) while
// printing only the redacted message.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
