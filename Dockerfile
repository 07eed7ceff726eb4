# syntax=docker/dockerfile:1
#
# The encfs sidecar image. It runs either of the two sidecars of a confidential container group:
#
#   * the encrypted filesystem (the default command: `mount --config-env EncfsSideCarArgs`);
#   * the secure key release API, with `skr` as the command (`docker run IMAGE skr`, or an ACI
#     or Kubernetes command of ["/encfs", "skr"]): the reference SKR sidecar's REST API on
#     127.0.0.1:$Port (default 8080) for the group's other containers, configured by
#     SkrSideCarArgs, Port, LogLevel and LogFile as the reference is. That role needs no
#     /dev/fuse and no privilege; see docs/OPERATIONS.md, "The key release API".
#
#   docker build -t encfs:dev .                   # the sidecar (distroless, static binary, ~15 MB)
#   docker build --target debug -t encfs:debug .  # the same binary on Debian with a shell and fuse3
#
# What the filesystem role needs at run time
#   * /dev/fuse and the right to call mount(2): CAP_SYS_ADMIN plus the /dev/fuse device
#     (docker run --cap-add SYS_ADMIN --device /dev/fuse, plus --security-opt
#     apparmor=unconfined where AppArmor's docker-default profile forbids mount), or simply a
#     privileged container.
#     ACI confidential container groups and AKS (Kata) pods offer only "privileged": set
#     securityContext.privileged = true on the sidecar (examples/aci, examples/aks).
#   * To run as root (uid 0). encfs mounts with go-fuse's DirectMount, i.e. the mount(2) system
#     call itself, which needs root and CAP_SYS_ADMIN; it needs no fusermount3 helper, no
#     setuid binary, no libfuse and no shell. That is why the runtime stage is distroless
#     "static" as root: the ":nonroot" variants cannot mount FUSE at all.
#   * The shared volume: mount a volume (ACI emptyDir, Kubernetes emptyDir) at the parent
#     directory of the configured mount_point, e.g. /mnt/remote for mount_point
#     /mnt/remote/share, in the sidecar and in every consumer container. On Kubernetes the
#     sidecar's volumeMount needs mountPropagation: Bidirectional and the consumers'
#     HostToContainer, or the consumers see an empty directory.
#   * The configuration: base64 of the JSON document (examples/config/encfs-sidecar-args.json)
#     in the environment variable EncfsSideCarArgs, as the reference sidecar takes it. The
#     default command below reads it from there; `mount --config FILE` reads a plain JSON file.
#   * Network access to Azure Attestation, Key Vault / Managed HSM and Blob Storage, and, in
#     production, the container group's SEV-SNP device and security context (provided by the
#     confidential platform; nothing to mount by hand).
#   * CA certificates for TLS: the distroless static image ships /etc/ssl/certs.

# For a release, pin both base images by digest (FROM image:tag@sha256:...): the confidential
# container policy measures the final image's layers, so a moving tag changes the policy hash
# (and so the key's release policy) on every rebuild.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# A static, reproducible binary: no cgo (go-fuse and the crypto are pure Go plus Go assembly),
# no file system paths or VCS stamps in it, no symbol tables.
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w" -o /out/encfs ./cmd/encfs \
 && /out/encfs --help >/dev/null

# Troubleshooting variant: a shell, fuse3 (fusermount3, for running as a non-root user where
# the kernel allows it) and mount tools. Not the default: the default is the last stage.
FROM debian:bookworm-slim AS debug
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates fuse3 util-linux \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/encfs /encfs
ENTRYPOINT ["/encfs"]
CMD ["mount", "--config-env", "EncfsSideCarArgs"]

# The sidecar. distroless/static (not :nonroot) runs as root, which DirectMount needs; it holds
# only CA certificates, tzdata and /etc/passwd, nothing an attacker in the container could use.
FROM gcr.io/distroless/static-debian12 AS sidecar
COPY --from=build /out/encfs /encfs
USER 0:0
# `mount --metrics-addr 0.0.0.0:9090` serves /metrics, /healthz and /readyz (the examples add
# it to the command; without it nothing listens).
EXPOSE 9090
ENTRYPOINT ["/encfs"]
# Mount every filesystem of the base64 JSON configuration in EncfsSideCarArgs, stay in the
# foreground, unmount on SIGTERM. With `skr` as the command instead, serve the key release API
# (the reference SKR sidecar's environment variables apply; SIGTERM stops it).
CMD ["mount", "--config-env", "EncfsSideCarArgs"]
