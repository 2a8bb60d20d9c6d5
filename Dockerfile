# Multi-stage build: compile with the Rust image, run on a minimal non-root base.
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole tree: Cargo.toml names the test and bench targets, which must exist to build.
COPY . .
RUN cargo build --release --locked --bin s3seal && strip target/release/s3seal

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/s3seal /usr/local/bin/s3seal
USER nonroot
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/s3seal"]
CMD ["serve", "--config", "/etc/s3seal/s3seal.toml"]
