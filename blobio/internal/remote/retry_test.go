package remote

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/internal/retry"
)

// stallUntilDone is a try that hangs until its context ends, as a request to a storage server
// that stopped answering does.
func stallUntilDone(ctx context.Context) *Attempt {
	<-ctx.Done()
	return ClassifyTransport(ctx.Err())
}

// When the operation's deadline cuts the last try short, the error reports the failure before
// it (what the storage answered), not the deadline.
func TestRetrierReportsLastAnswerWhenDeadlineCutsATry(t *testing.T) {
	r := NewRetrier(retry.Policy{Budget: 300 * time.Millisecond, BaseDelay: 10 * time.Millisecond}, nil, "blob", true)
	tries := 0
	err := r.Do(context.Background(), "read", func(ctx context.Context) *Attempt {
		tries++
		if tries <= 2 {
			return ClassifyStatus(http.StatusInternalServerError, "InternalError", nil, errors.New("server error"))
		}
		return stallUntilDone(ctx)
	})
	var be *blobio.Error
	if !errors.As(err, &be) || be.Status != http.StatusInternalServerError || be.Tries != 3 ||
		!errors.Is(err, blobio.ErrUnreachable) {
		t.Fatalf("got %v (%+v), want the HTTP 500 of try 2 reported after 3 tries", err, be)
	}
}

// A try that its own timeout ended is a failure of its own: a stalled server is reported as
// such, even after an earlier answer.
func TestRetrierReportsATryTimeout(t *testing.T) {
	r := NewRetrier(retry.Policy{TryTimeout: 50 * time.Millisecond, BaseDelay: 10 * time.Millisecond, MaxTries: 2},
		nil, "blob", true)
	tries := 0
	err := r.Do(context.Background(), "read", func(ctx context.Context) *Attempt {
		tries++
		if tries == 1 {
			return ClassifyStatus(http.StatusInternalServerError, "InternalError", nil, errors.New("server error"))
		}
		return stallUntilDone(ctx)
	})
	var be *blobio.Error
	if !errors.As(err, &be) || be.Status != 0 || !errors.Is(err, context.DeadlineExceeded) || be.Tries != 2 {
		t.Fatalf("got %v (%+v), want the stalled try 2 reported", err, be)
	}
}
