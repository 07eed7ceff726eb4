package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/encfs/encfs/keys"
)

func TestKeyOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want KeyOutcome
	}{
		{nil, KeyReleased},
		{&keys.Error{Stage: keys.StageKeyRelease, StatusCode: 403, Err: keys.ErrPolicyNotMet}, KeyPolicyNotMet},
		{fmt.Errorf("filesystem 0: %w", &keys.Error{Stage: keys.StageKeyRelease, StatusCode: 403, Err: keys.ErrAccessDenied}), KeyAccessDenied},
		{&keys.Error{Stage: keys.StageAttestation, Err: keys.ErrUnavailable}, KeyUnavailable},
		{errors.New("key file: no such file"), KeyFailed},
	} {
		if got := KeyOutcomeOf(c.err); got != c.want {
			t.Errorf("KeyOutcomeOf(%v) = %s; want %s", c.err, got, c.want)
		}
	}
}

func TestFilesystemsExportEveryStateOnce(t *testing.T) {
	f := NewFilesystems()
	f.Add("0", "/mnt/a")
	f.Add("1", "/mnt/b")
	f.SetKey("0", KeyReleased)
	f.SetState("0", StateMounted)
	f.SetKey("1", KeyPolicyNotMet)
	f.SetState("1", StateFailed)
	f.SetState("7", StateMounted) // not added: ignored
	want := `
# HELP encfs_filesystem_state 1 for the state each configured filesystem is in (mounting, mounted, failed, unmounted), 0 for the others.
# TYPE encfs_filesystem_state gauge
encfs_filesystem_state{filesystem="0",mount_point="/mnt/a",state="failed"} 0
encfs_filesystem_state{filesystem="0",mount_point="/mnt/a",state="mounted"} 1
encfs_filesystem_state{filesystem="0",mount_point="/mnt/a",state="mounting"} 0
encfs_filesystem_state{filesystem="0",mount_point="/mnt/a",state="unmounted"} 0
encfs_filesystem_state{filesystem="1",mount_point="/mnt/b",state="failed"} 1
encfs_filesystem_state{filesystem="1",mount_point="/mnt/b",state="mounted"} 0
encfs_filesystem_state{filesystem="1",mount_point="/mnt/b",state="mounting"} 0
encfs_filesystem_state{filesystem="1",mount_point="/mnt/b",state="unmounted"} 0
`
	if err := testutil.CollectAndCompare(f, strings.NewReader(want), "encfs_filesystem_state"); err != nil {
		t.Error(err)
	}
	out, err := testutil.CollectAndFormat(f, expfmt.TypeTextPlain, "encfs_filesystem_key_release")
	if err != nil {
		t.Fatal(err)
	}
	want1 := map[string]KeyOutcome{"0": KeyReleased, "1": KeyPolicyNotMet}
	mp := map[string]string{"0": "/mnt/a", "1": "/mnt/b"}
	for id, current := range want1 {
		for _, o := range allOutcomes {
			v := 0
			if o == current {
				v = 1
			}
			line := fmt.Sprintf("encfs_filesystem_key_release{filesystem=%q,mount_point=%q,outcome=%q} %d\n", id, mp[id], o, v)
			if !strings.Contains(string(out), line) {
				t.Errorf("missing %s in\n%s", line, out)
			}
		}
	}
}
