package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/encfs/encfs/metrics"
)

// RunOptions are the settings of Run that concern all filesystems together.
type RunOptions struct {
	// MetricsAddr, when set, is where Prometheus /metrics, /healthz and /readyz are served.
	MetricsAddr string
	// ReadyFile, when set, is written with the mount paths (one a line) once every filesystem is
	// mounted, and removed at the end.
	ReadyFile string
	// Advice, when set, says what the user can do about an error (the command line's advice,
	// in terms of its flags); it is logged with a filesystem that failed to mount.
	Advice func(error) string
}

func (o RunOptions) advise(err error) string {
	if o.Advice == nil {
		return ""
	}
	return o.Advice(err)
}

// Run mounts every spec independently and concurrently (key release included), serves
// metrics if asked, and waits until ctx ends or every filesystem was unmounted from outside;
// then it unmounts them. A spec that fails is logged and the others keep serving; it is an
// error only when none mounts. One line per mounted filesystem goes to out. /readyz is ready,
// and the ready file written, once every spec is mounted.
func Run(ctx context.Context, out io.Writer, specs []MountSpec, o RunOptions) error {
	live := make([]atomic.Pointer[Mounted], len(specs))
	collector := metrics.NewCollector()
	states := metrics.NewFilesystems()
	for i := range specs {
		states.Add(strconv.Itoa(i), specs[i].Mountpoint)
	}
	budget, heap := memoryBudget(specs)
	setMemoryLimit(heap, slog.Default())
	collector.SetMemoryBudget(budget)
	slog.Info("memory budget", "bytes", budget, "go_heap_limit", heap)
	if o.MetricsAddr != "" {
		addr, err := metrics.Serve(ctx, o.MetricsAddr, metrics.Handler(metrics.NewRegistry(collector, states), probes(specs, live)), slog.Default())
		if err != nil {
			return err
		}
		slog.Info("serving metrics", "addr", addr.String())
	}
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		if spec.Log == nil {
			spec.Log = slog.Default()
		}
		id, keysOf := strconv.Itoa(i), spec.Keys
		spec.Keys = func(ctx context.Context) ([][]byte, error) {
			ks, err := keysOf(ctx)
			states.SetKey(id, metrics.KeyOutcomeOf(err))
			return ks, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			m, err := Mount(ctx, spec)
			if err != nil {
				states.SetState(id, metrics.StateFailed)
				errs[i] = err
				if len(specs) > 1 {
					errs[i] = fmt.Errorf("%s: %w", spec.Name, err)
					attrs := []any{"err", err}
					if a := o.advise(err); a != "" {
						attrs = append(attrs, "hint", a)
					}
					spec.Log.Error("filesystem not mounted; the others keep serving", attrs...)
				}
				return
			}
			if m.vol != nil {
				collector.Add(m.Target(), m.vol.stats)
			} else {
				collector.Add(m.Point.Target, metrics.For(m.FS))
			}
			live[i].Store(m)
			states.SetState(id, metrics.StateMounted)
			go func() {
				select {
				case <-m.Done():
					states.SetState(id, metrics.StateUnmounted)
				case <-ctx.Done():
				}
			}()
			fmt.Fprintf(out, "mounted %s in %d ms\n", m.Describe(), time.Since(start).Milliseconds())
		}()
	}
	wg.Wait()
	var mounted []*Mounted
	for i := range live {
		if m := live[i].Load(); m != nil {
			mounted = append(mounted, m)
		}
	}
	if len(mounted) == 0 {
		return errors.Join(errs...)
	}
	if o.ReadyFile != "" && len(mounted) == len(specs) {
		var targets []string
		for _, m := range mounted {
			targets = append(targets, m.Target())
		}
		if err := writeReadyFile(o.ReadyFile, strings.Join(targets, "\n")); err != nil {
			slog.Error("cannot write the ready file", "err", err)
		}
		defer os.Remove(o.ReadyFile)
	}
	waitForEnd(ctx, mounted)
	var unmountErrs []error
	for _, m := range mounted {
		if err := m.Unmount(); err != nil {
			unmountErrs = append(unmountErrs, err)
			continue
		}
		m.Spec.Log.Info("unmounted", "path", m.Target())
	}
	return errors.Join(unmountErrs...)
}

// waitForEnd returns on a signal, or once every filesystem was unmounted from outside.
func waitForEnd(ctx context.Context, mounted []*Mounted) {
	gone := make(chan struct{}, len(mounted))
	for _, m := range mounted {
		go func() {
			select {
			case <-m.Done():
				m.Spec.Log.Warn("the filesystem was unmounted from outside", "path", m.Target())
				gone <- struct{}{}
			case <-ctx.Done():
			}
		}()
	}
	for range mounted {
		select {
		case <-ctx.Done():
			slog.Info("signal received: unmounting")
			return
		case <-gone:
		}
	}
}
