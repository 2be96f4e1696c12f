# syntax=docker/dockerfile:1
#
# tollgate's image: one static binary on distroless/static, run as UID 65532.
#
#   docker build -t tollgate .
#   docker run --rm -p 50051:50051 -p 8081:8081 \
#     -v "$PWD/envoy/tollgate.yaml:/etc/tollgate/tollgate.yaml:ro" tollgate
#
# No config is baked in: the example config carries demo keys, and an image
# that starts with them when someone forgets to mount a config would be a
# gate with a known key. envoy/manifests_test.go parses this file and checks
# it against the Kubernetes and compose manifests.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Modules in a layer of their own, reused until go.mod or go.sum change.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
COPY . .
# CGO off: the binary needs no libc, so it runs on distroless/static. The
# spool directory is made here because the final image has no shell; it is
# copied with the runtime user's ownership so that a fresh Docker volume
# mounted on it is writable.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/tollgate ./cmd/tollgate && \
    mkdir -p /out/spool

# distroless/static holds CA certificates (Redis TLS, OTLP) and tzdata (quota
# periods in a time zone), and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tollgate /tollgate
COPY --from=build --chown=65532:65532 /out/spool /var/lib/tollgate/spool
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# 50051: ext_proc and grpc.health.v1 for Envoy; 8081: /healthz, /readyz,
# /metrics and the admin API.
EXPOSE 50051 8081
ENTRYPOINT ["/tollgate"]
CMD ["serve", "--config", "/etc/tollgate/tollgate.yaml"]
