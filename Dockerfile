# warmline gateway image: build in a full Rust image, run in a small Debian one as a non-root user.
#   docker build -t warmline .
#   docker run -p 8080:8080 -v $PWD/warmline.toml:/etc/warmline/warmline.toml:ro warmline
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
COPY models ./models
COPY fixtures ./fixtures
COPY tests ./tests
RUN cargo build --release --locked --bin warmline \
    && strip target/release/warmline

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/warmline --create-home warmline
COPY --from=build /src/target/release/warmline /usr/local/bin/warmline
COPY --from=build /src/models /usr/share/warmline/models
USER warmline
WORKDIR /var/lib/warmline
# The config must set [server] listen = "0.0.0.0:8080" inside the container; the outbox and
# warm-transfer state live under the working directory (mount a volume to keep them).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/warmline"]
CMD ["serve", "--config", "/etc/warmline/warmline.toml"]
