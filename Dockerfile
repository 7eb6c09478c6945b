# syntax=docker/dockerfile:1
# The kube-vrrp image for people with Docker or BuildKit. It holds what `make image` puts in the
# daemonless archive: both binaries in /usr/local/bin, run as 65532:65532, with glibc from a
# distroless base instead of the libraries copied from the build machine.
#   docker build -t ghcr.io/kube-vrrp/kube-vrrp:0.1.0 .
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins -p kube-vrrp-agent -p kube-vrrp-operator \
 && mkdir /out \
 && objcopy --strip-debug target/release/kube-vrrp-agent /out/kube-vrrp-agent \
 && objcopy --strip-debug target/release/kube-vrrp-operator /out/kube-vrrp-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
CMD ["kube-vrrp-agent", "--help"]
