package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxResponse bounds any response body read from a service.
const maxResponse = 4 << 20

// httpStatusError is a non-2xx answer from a service, holding its own code and message.
type httpStatusError struct {
	Status  int
	Code    string
	Message string
}

func (e *httpStatusError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// retryableStatus says whether a status is worth another try: throttling, timeouts and server
// errors; never 4xx answers about the request itself.
func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// fetch sends req and returns the body of a 2xx answer. Network failures and retryable statuses
// come back marked transient (with the server's Retry-After) for retryPolicy.do; other statuses as *httpStatusError.
func fetch(ctx context.Context, client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, transient(err, nil)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, transient(fmt.Errorf("read response: %w", err), nil)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponse)
	}
	if resp.StatusCode/100 == 2 {
		return body, nil
	}
	code, msg := serviceMessage(body)
	herr := &httpStatusError{Status: resp.StatusCode, Code: code, Message: msg}
	if retryableStatus(resp.StatusCode) {
		return nil, transient(herr, resp.Header)
	}
	return nil, herr
}

// serviceMessage extracts the Azure error shape {"error":{"code","message"}} from a body, or
// falls back to the body's first line of text.
func serviceMessage(body []byte) (code, msg string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Error.Code != "" || e.Error.Message != "") {
		return e.Error.Code, clip(e.Error.Message)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	return "", clip(line)
}

// clip keeps service messages to a log-friendly length.
func clip(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
