package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Probes answer /healthz and /readyz. Healthy returns nil while the process can serve, or
// what only a restart can mend; Ready returns nil once every mount is live and its storage
// serving, or what it waits for. Each answer's error is the probe's 503 body.
type Probes struct {
	Healthy func() error
	Ready   func() error
}

// NewRegistry returns a registry with the collector, any more collectors given (such as
// Filesystems), and the Go runtime and process metrics (resident memory is one of the sidecar's
// budgets).
func NewRegistry(c *Collector, more ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(more...)
	return reg
}

// Handler serves /metrics, /healthz and /readyz.
func Handler(reg *prometheus.Registry, p Probes) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if p.Healthy != nil {
			if err := p.Healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if p.Ready != nil {
			if err := p.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Serve listens on addr and serves h until ctx is cancelled. It returns the address actually
// listened on (addr may ask for port 0) once the listener is open. An address without a host
// (":9090", or just "9090") means localhost: the metrics leave the machine only when asked to.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", listenAddr(addr))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	return ln.Addr(), nil
}

func listenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil { // no port separator: a bare port
		host, port = "", addr
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
