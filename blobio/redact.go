package blobio

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
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

// Redact removes secret query values, bearer tokens and account keys from s.
func Redact(s string) string {
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

// redactURL returns u as text with the values of secret query parameters replaced, keeping
// the others (a SAS's se= expiry and sp= permissions help when access is refused).
func redactURL(u *url.URL) string {
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

// Display names an image location in messages: a local path as it is; a URL without its query
// string, followed for a SAS by its permissions and expiry (see displayURL). It never shows a
// secret, and it is short enough to repeat in a log line.
func Display(location string) string {
	if !IsRemote(location) {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		return Redact(location)
	}
	return displayURL(u)
}

// displayURL names a blob in messages: the URL without its query string (a SAS is long and its
// signature is secret), then the SAS fields that help when access is refused. Snapshot and
// version ids stay: they say which blob.
func displayURL(u *url.URL) string {
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
	if sas := parseSAS(q); sas.present {
		s += " (SAS sp=" + sas.perms
		if !sas.expiry.IsZero() {
			s += fmt.Sprintf(" se=%s", sas.expiry.UTC().Format("2006-01-02T15:04Z"))
		}
		s += ")"
	}
	return s
}

// redactErr returns err with its message redacted, or nil.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{msg: Redact(err.Error()), err: err}
}

// redactedError keeps the chain for errors.Is/As (context.DeadlineExceeded, net errors) while
// printing only the redacted message.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
