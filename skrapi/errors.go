package skrapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/encfs/encfs/keys"
)

// apiError is an answer other than 200: the status and the {"error"} message.
type apiError struct {
	Status     int
	Msg        string
	RetryAfter int // seconds, for 503
}

func (e *apiError) Error() string { return e.Msg }

// badRequest is a 400 about the request itself.
func badRequest(msg string) *apiError { return &apiError{Status: http.StatusBadRequest, Msg: msg} }

// statusOf maps a failure to the reference's status codes: 400 for a bad request, 403 for an
// attestation or release that failed or was refused (the message names the stage and carries
// the service's own words), and 503 when a service stayed unavailable through every retry or the
// request ran out of time, so that a client knows a retry may succeed.
func statusOf(err error) (int, int) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae.RetryAfter
	}
	var ke *keys.Error
	if errors.As(err, &ke) {
		if errors.Is(err, keys.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			return http.StatusServiceUnavailable, 5
		}
		return http.StatusForbidden, 0
	}
	return http.StatusInternalServerError, 0
}

// writeError answers {"error": message}. Messages come from package keys (which never puts a
// key or token in one) or from this package.
func writeError(w http.ResponseWriter, err error) {
	status, retry := statusOf(err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the response"}`)
	}
	writeBody(w, status, b)
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}
