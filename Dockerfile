# Multi-stage build: the same `cargo build --release --locked` binary the tests exercise,
# in a small runtime image running as a non-root user.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin detectd

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/detectd --uid 10001 detectd
COPY --from=build /src/target/release/detectd /usr/local/bin/detectd
COPY rules /etc/detectd/rules
COPY sample /usr/share/detectd/sample
COPY kibana /usr/share/detectd/kibana
COPY config.toml /etc/detectd/config.toml
COPY deploy/setup.sh /usr/local/bin/detectd-setup
USER detectd
WORKDIR /var/lib/detectd
ENV DETECTD__RULES_DIR=/etc/detectd/rules \
    DETECTD__EMBEDDED__DATA=/usr/share/detectd/sample
ENTRYPOINT ["/usr/local/bin/detectd", "--config", "/etc/detectd/config.toml"]
CMD ["run"]
