package sidecar

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/metrics"
)

// probes are /readyz and /healthz over the filesystems of specs; live[i] is spec i once
// mounted (nil until then, and for good when its mount failed).
func probes(specs []MountSpec, live []atomic.Pointer[Mounted]) metrics.Probes {
	return metrics.Probes{
		// Ready: every filesystem is mounted and its storage serving (an outage or an open
		// breaker makes reads fail, so the group should not count on it).
		Ready: func() error {
			for i := range live {
				m := live[i].Load()
				if m == nil {
					return fmt.Errorf("%s is not mounted yet", specs[i].Mountpoint)
				}
				if m.Health != nil {
					if h := m.Health(); h.State != blobio.StateServing {
						return fmt.Errorf("storage of %s: %s since %s: %v", m.Target(), h.State, h.Since.Format(time.RFC3339), h.Cause)
					}
				}
			}
			return nil
		},
		// Healthy: nothing that only a restart can mend: a filesystem unmounted from outside,
		// or storage whose breaker is open (blob replaced or deleted, access refused).
		Healthy: func() error {
			for i := range live {
				m := live[i].Load()
				if m == nil {
					continue
				}
				if m.unmounted() {
					return fmt.Errorf("%s is no longer mounted", m.Target())
				}
				if m.Health != nil {
					if h := m.Health(); h.State == blobio.StateBroken {
						return fmt.Errorf("storage of %s: breaker open since %s (%d failed reads): %v",
							m.Target(), h.Since.Format(time.RFC3339), h.FailedReads, h.Cause)
					}
				}
			}
			return nil
		},
	}
}
