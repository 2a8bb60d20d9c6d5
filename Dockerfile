# s3seal as a container: build with the Rust image, run on a distroless base as a non-root user.
# The build steps are checked by scripts/check-deploy (run by scripts/test): the cargo command
# below is run there in check mode, and tests/e2e/deploy.rs checks the paths and users.

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole tree (minus .dockerignore): Cargo.toml names the test, bench and fuzz targets,
# which must exist for cargo to read the manifest.
COPY . .
# Without the embedded demo store: the image serves a config, it is not a playground.
RUN cargo build --release --locked --no-default-features --bin s3seal \
    && strip target/release/s3seal

# glibc and libgcc only (aws-lc links against them); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /src/target/release/s3seal /usr/local/bin/s3seal
# Numeric, so that Kubernetes' runAsNonRoot can check it (65532 is distroless' `nonroot`).
USER 65532:65532
ENV S3SEAL_CONFIG=/etc/s3seal/s3seal.toml
# 8443: S3 over HTTPS. 9090: admin (/healthz, /readyz, /metrics) when admin_listen sets it.
EXPOSE 8443 9090
# SIGTERM drains in-flight requests (drain_timeout_secs) and exits 0; SIGHUP reloads.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/s3seal"]
CMD ["serve"]
