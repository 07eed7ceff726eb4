package metrics

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/encfs/encfs/keys"
)

// State is where one configured filesystem is in its life: the sidecar reports every
// filesystem of its configuration, including those that never mounted, so that an alert can
// say which one is down and why (the per-mount counters exist only once a mount does).
type State string

const (
	StateMounting  State = "mounting"  // key release, opening the image, mounting
	StateMounted   State = "mounted"   // serving reads
	StateFailed    State = "failed"    // did not mount; the log says why, the others keep serving
	StateUnmounted State = "unmounted" // was mounted, then unmounted from outside
)

// KeyOutcome is the result of obtaining a filesystem's release key.
type KeyOutcome string

const (
	KeyPending      KeyOutcome = "pending"        // not obtained yet
	KeyReleased     KeyOutcome = "released"       // released by Key Vault, or read from a key file
	KeyPolicyNotMet KeyOutcome = "policy_not_met" // Key Vault refused: the attestation does not satisfy the release policy
	KeyAccessDenied KeyOutcome = "access_denied"  // Key Vault refused: the identity may not release the key
	KeyUnavailable  KeyOutcome = "unavailable"    // a service stayed unreachable through every retry
	KeyFailed       KeyOutcome = "failed"         // any other failure (attestation, security context, key file, ...)
)

var (
	allStates   = []State{StateMounting, StateMounted, StateFailed, StateUnmounted}
	allOutcomes = []KeyOutcome{KeyPending, KeyReleased, KeyPolicyNotMet, KeyAccessDenied, KeyUnavailable, KeyFailed}

	descFSState = prometheus.NewDesc("encfs_filesystem_state",
		"1 for the state each configured filesystem is in (mounting, mounted, failed, unmounted), 0 for the others.",
		[]string{"filesystem", "mount_point", "state"}, nil)
	descKeyRelease = prometheus.NewDesc("encfs_filesystem_key_release",
		"1 for the outcome of obtaining each configured filesystem's release key (pending, released, policy_not_met, access_denied, unavailable, failed), 0 for the others.",
		[]string{"filesystem", "mount_point", "outcome"}, nil)
)

// KeyOutcomeOf classifies the error of a key release (nil: released).
func KeyOutcomeOf(err error) KeyOutcome {
	switch {
	case err == nil:
		return KeyReleased
	case errors.Is(err, keys.ErrPolicyNotMet):
		return KeyPolicyNotMet
	case errors.Is(err, keys.ErrAccessDenied):
		return KeyAccessDenied
	case errors.Is(err, keys.ErrUnavailable):
		return KeyUnavailable
	default:
		return KeyFailed
	}
}

// Filesystems is a prometheus.Collector of the state and key-release outcome of each
// configured filesystem, keyed by its index in the configuration.
type Filesystems struct {
	mu  sync.Mutex
	fss map[string]*fsState
}

type fsState struct {
	mountPoint string
	state      State
	key        KeyOutcome
}

// NewFilesystems returns an empty table; Add each filesystem before it starts mounting.
func NewFilesystems() *Filesystems { return &Filesystems{fss: make(map[string]*fsState)} }

// Add starts reporting filesystem id (its index in the configuration) as mounting, key pending.
func (f *Filesystems) Add(id, mountPoint string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fss[id] = &fsState{mountPoint: mountPoint, state: StateMounting, key: KeyPending}
}

// SetState records the state of filesystem id (added before).
func (f *Filesystems) SetState(id string, s State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fs := f.fss[id]; fs != nil {
		fs.state = s
	}
}

// SetKey records the outcome of obtaining the key of filesystem id (added before).
func (f *Filesystems) SetKey(id string, o KeyOutcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fs := f.fss[id]; fs != nil {
		fs.key = o
	}
}

func (f *Filesystems) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFSState
	ch <- descKeyRelease
}

// Collect exports every state and outcome of every filesystem, 1 for the current one: an
// alert on `== 1` then never depends on a series appearing or vanishing.
func (f *Filesystems) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, fs := range f.fss {
		for _, s := range allStates {
			ch <- prometheus.MustNewConstMetric(descFSState, prometheus.GaugeValue, boolValue(s == fs.state), id, fs.mountPoint, string(s))
		}
		for _, o := range allOutcomes {
			ch <- prometheus.MustNewConstMetric(descKeyRelease, prometheus.GaugeValue, boolValue(o == fs.key), id, fs.mountPoint, string(o))
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
