# syntax=docker/dockerfile:1
#
# Duet as a container: `docker build -t duet .` then
# `docker run -p 8080:8080 -v duet-data:/data duet`. The SQLite file lives in the /data volume.

# ---- build ----
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Dependencies first, from the manifests and empty crates only: this layer is reused until a
# Cargo.toml or Cargo.lock changes, so editing code does not rebuild every dependency.
COPY Cargo.toml Cargo.lock ./
# Patched dependencies (`[patch.crates-io]`), built with the others.
COPY vendor/ vendor/
COPY domain/Cargo.toml domain/
COPY adapters/Cargo.toml adapters/
COPY migrations/Cargo.toml migrations/
COPY app/Cargo.toml app/
# bench/ and tests/ are not built here, but cargo reads every member's manifest to resolve
# the workspace.
COPY bench/Cargo.toml bench/
COPY tests/Cargo.toml tests/
RUN set -eux; \
    for crate in domain adapters migrations app bench tests; do \
        mkdir -p "$crate/src"; \
        : > "$crate/src/lib.rs"; \
    done; \
    echo 'fn main() {}' > app/src/main.rs; \
    echo 'fn main() {}' > bench/src/main.rs; \
    mkdir -p tests/tests/api tests/tests/replica tests/tests/cluster; \
    : > tests/tests/api/main.rs; \
    : > tests/tests/replica/main.rs; \
    : > tests/tests/cluster/main.rs; \
    cargo build --release --locked -p duet; \
    rm -rf domain adapters migrations app bench tests

# The real sources. COPY keeps the files' own modification times, which can be older than
# the placeholder build above: touch them so cargo rebuilds the workspace crates.
COPY . .
RUN set -eux; \
    find domain adapters migrations app -name '*.rs' -exec touch {} +; \
    cargo build --release --locked -p duet; \
    cp target/release/duet /usr/local/bin/duet

# ---- run ----
FROM debian:bookworm-slim

RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system duet; \
    useradd --system --gid duet --home-dir /app --no-create-home --shell /usr/sbin/nologin duet; \
    mkdir -p /app /data; \
    chown duet:duet /data

WORKDIR /app
COPY --from=builder /usr/local/bin/duet /usr/local/bin/duet

# Settings layer over the built-in defaults: the built-in `small` profile (SQLite, in-process
# delivery), listening on every interface, the database in the volume, JSON logs for
# collectors. Mount a file and pass `--config` (or set DUET_CONFIG_DIR) to override.
ENV DUET_PROFILE=small \
    DUET__SERVER__HOST=0.0.0.0 \
    DUET__SERVER__PORT=8080 \
    DUET__STORAGE__SQLITE__PATH=/data/duet.db \
    DUET__TELEMETRY__LOG_FORMAT=json

VOLUME ["/data"]
USER duet
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${DUET__SERVER__PORT}/health/live" || exit 1

ENTRYPOINT ["/usr/local/bin/duet"]
CMD ["serve"]
