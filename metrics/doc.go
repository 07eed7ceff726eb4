// Package metrics exposes the sidecar's counters to Prometheus (/metrics) with /healthz and
// /readyz beside them. The counters live where the work is done (package fs, the image reader,
// the blobio source); this package only reads snapshots of them when scraped, so the read path
// pays nothing for metrics it does not already keep.
package metrics
