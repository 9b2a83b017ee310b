# channel-bridge container image.
#
#   docker build -t channel-bridge .
#   docker run -p 8080:8080 -v channel-bridge-data:/var/lib/channel-bridge channel-bridge
#
#   docker run ... -v ./my-config.toml:/etc/channel-bridge/config.toml:ro channel-bridge
#
# The image carries no config and so no dev credentials: mount your own file at
# /etc/channel-bridge/config.toml (or point CHANNEL_BRIDGE_CONFIG elsewhere). Without one
# the daemon exits at once, saying where it looked and what the file needs. A demo may mount
# config/default.toml with CHANNEL_BRIDGE_ALLOW_DEV_CREDENTIALS=true: its published tokens
# are refused on 0.0.0.0 otherwise.

# ---- build ------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# No line tables in the image's binary: they would make it about four times larger (the
# repo's release profile keeps them for profiling). A panic's backtrace still names its
# functions.
ENV CARGO_PROFILE_RELEASE_DEBUG=false

# Dependency layer: build every dependency against a dummy crate, so that a change to the
# sources alone does not recompile them. This layer is rebuilt only when Cargo.toml or
# Cargo.lock change. Then forget the dummy crate's own artifacts: COPY keeps the real
# sources' (possibly older) mtimes, and cargo could take the dummy build as up to date.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --no-default-features \
    && rm -rf src \
        target/release/.fingerprint/channel-bridge-* \
        target/release/deps/channel_bridge-* \
        target/release/deps/libchannel_bridge-* \
        target/release/channel-bridge

# The real sources. migrations/ and config/ are compiled in (include_str!: the SQL schema
# and the built-in default config), so they are needed here, not only at run time.
COPY src ./src
COPY migrations ./migrations
COPY config ./config
# Without default features: the bench binary (feature "bench") is not built into the image.
RUN cargo build --release --locked --no-default-features

# ---- runtime ----------------------------------------------------------------------------
# Same Debian release as the build stage, so the binary's glibc matches.
FROM debian:bookworm-slim

# TLS goes through rustls, which still needs the system's CA roots to trust platform APIs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so volume ownership and securityContext settings can name them.
RUN groupadd --gid 10001 channel-bridge \
    && useradd --uid 10001 --gid channel-bridge \
        --home-dir /var/lib/channel-bridge --no-create-home \
        --shell /usr/sbin/nologin channel-bridge \
    && mkdir -p /etc/channel-bridge /var/lib/channel-bridge \
    && chown channel-bridge:channel-bridge /var/lib/channel-bridge

COPY --from=build /src/target/release/channel-bridge /usr/local/bin/channel-bridge

# The config file (mounted, read-only to the daemon, which only reads it), then env overrides of its keys (CHANNEL_BRIDGE__SECTION__KEY): listen
# on every interface, so the published port reaches the daemon, and keep the database
# (and its -wal, -shm and .lock files) on the volume.
ENV CHANNEL_BRIDGE_CONFIG=/etc/channel-bridge/config.toml \
    CHANNEL_BRIDGE__SERVER__LISTEN=0.0.0.0:8080 \
    CHANNEL_BRIDGE__STORAGE__URL=sqlite:///var/lib/channel-bridge/channel-bridge.db

# Declared after the chown above: a new named volume is seeded from the image's folder,
# ownership included, so the non-root user can write to it. (Changes made to a folder
# after it is declared a VOLUME would be discarded.)
VOLUME /var/lib/channel-bridge
# Relative paths in a config (e.g. sqlite://data/x.db) land on the volume too.
WORKDIR /var/lib/channel-bridge

EXPOSE 8080

# By name; Kubernetes' runAsNonRoot cannot check a name, so set
# runAsUser: 10001 in the pod's securityContext there.
USER channel-bridge

# The binary's own probe (GET /healthz), so the slim image needs no curl. It loads the
# config like the daemon does, hence the same env.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["channel-bridge", "healthcheck", "--url", "http://127.0.0.1:8080"]

# No init process needed: the daemon is PID 1, handles SIGTERM itself (stops accepting,
# finishes in-flight requests and deliveries, exits 0) and starts no child processes to
# reap. Its drain waits up to server.shutdown_grace_ms (10 s by default), which is also
# `docker stop`'s default timeout: give `docker stop -t` / terminationGracePeriodSeconds
# a few seconds more than that.
ENTRYPOINT ["channel-bridge"]
CMD ["serve"]
