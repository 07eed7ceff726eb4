// Package sidecar is what `encfs mount` runs: for each filesystem to serve it obtains the
// release key (a key file, or Azure secure key release after SEV-SNP attestation), opens and
// authenticates the image from its source, checks the deployment's pins, mounts it with FUSE and
// publishes it; each filesystem on its own, so that one that fails leaves the others serving.
// Around the mounts it sets the memory budget, serves the metrics and the /readyz and /healthz
// probes, writes the ready file and unmounts everything at the end.
//
// SpecsFromConfig turns a configuration (the reference sidecar's document) into MountSpecs;
// Run mounts and serves them until its context ends.
package sidecar
