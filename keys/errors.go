package keys

import (
	"errors"
	"fmt"
)

// Stage names the step of a secure key release that failed, so an operator reading one log line
// knows whether to look at the container group, Azure Attestation, Entra ID or Key Vault.
type Stage string

// The stages of a secure key release, in the order they run.
const (
	StageSecurityContext Stage = "security context"
	StageSNPReport       Stage = "SNP report"
	StageAttestation     Stage = "attestation"
	StageAADToken        Stage = "AAD token"
	StageKeyRelease      Stage = "key release"
	StageJWSVerification Stage = "JWS verification"
	StageUnwrap          Stage = "unwrap"
	// StageKeyImport is the operator's import of a key (encfs key import), not part of a release.
	StageKeyImport Stage = "key import"
)

// Sentinel causes that callers can test with errors.Is on a release *Error.
var (
	// ErrPolicyNotMet: Key Vault refused the release because the attestation token did not satisfy
	// the key's release policy (typically a container policy hash mismatch).
	ErrPolicyNotMet = errors.New("the key's release policy was not met")
	// ErrAccessDenied: the identity was not authenticated or lacks permission on the key.
	ErrAccessDenied = errors.New("the identity lacks access to the key")
	// ErrUnavailable: a service stayed unreachable or kept failing through every retry.
	ErrUnavailable = errors.New("service unavailable after retries")
)

// Error is a failed secure key release. Stage says where it failed; StatusCode, Code and Message
// carry the service's own answer when there was one. It never holds key material or tokens.
type Error struct {
	Stage      Stage
	StatusCode int    // HTTP status from the service, 0 when the failure was local
	Code       string // the service's error code, if it sent one
	Message    string // the service's own error text, if it sent one
	Err        error  // the underlying cause, possibly one of the sentinels above
}

func (e *Error) Error() string {
	msg := "secure key release failed at " + string(e.Stage)
	if e.Stage == StageKeyImport {
		msg = "key import failed"
	}
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(" (HTTP %d", e.StatusCode)
		if e.Code != "" {
			msg += " " + e.Code
		}
		msg += ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Message != "" {
		msg += ": service said: " + e.Message
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// stageErr builds a local (non-HTTP) failure of a stage.
func stageErr(stage Stage, format string, args ...any) *Error {
	return &Error{Stage: stage, Err: fmt.Errorf(format, args...)}
}
