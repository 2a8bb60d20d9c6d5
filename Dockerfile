# Multi-stage build: compile with the Rust image, run on a minimal non-root base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/s3seal

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/s3seal /usr/local/bin/s3seal
USER nonroot
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/s3seal"]
CMD ["serve", "--config", "/etc/s3seal/s3seal.toml"]
