# syntax=docker/dockerfile:1
# Warren: multi-stage build of the release binary, run as a non-root user.
#   docker build -t warren .
#   docker run -p 5672:5672 -p 15672:15672 -p 15692:15692 -v warren-data:/var/lib/warren warren
# integration/rootfs_check.sh runs the binary the way this image does, without Docker.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep crates and build artefacts between builds; target/ lives only in the
# cache, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin warren \
    && install -m 0755 target/release/warren /usr/local/bin/warren

# Same Debian release as the build stage, so the glibc the binary links against is there.
FROM debian:bookworm-slim
# Fixed ids (999 as in the official RabbitMQ image) so that USER is numeric, which Kubernetes'
# runAsNonRoot needs, and so a bind-mounted data dir can be chowned to them on the host.
RUN groupadd --system --gid 999 warren \
    && useradd --system --uid 999 --gid warren --home-dir /var/lib/warren --shell /usr/sbin/nologin warren \
    && mkdir -p /var/lib/warren \
    && chown warren:warren /var/lib/warren
COPY --from=build /usr/local/bin/warren /usr/local/bin/warren

# The environment beats a config file (WARREN_CONFIG), so only what the image depends on is set
# here: the port the health check probes, the data dir on the volume, and, like the official
# RabbitMQ image (loopback_users.guest = false), guest allowed from outside the container, since
# published ports reach the broker from the bridge's address, not from loopback. Set
# WARREN_DEFAULT_USER/WARREN_DEFAULT_PASS (or WARREN_LOOPBACK_USERS=guest) for anything beyond a
# local trial.
ENV WARREN_BIND=0.0.0.0 \
    WARREN_PORT=5672 \
    WARREN_DATA_DIR=/var/lib/warren \
    WARREN_LOOPBACK_USERS=""
VOLUME /var/lib/warren
# AMQP, AMQPS (served once WARREN_TLS_CERT and WARREN_TLS_KEY name mounted PEM files readable
# by uid 999), the management API and web UI, Prometheus metrics.
EXPOSE 5672 5671 15672 15692
USER 999:999

# Healthy once the AMQP listener answers the protocol header with a frame (bash's /dev/tcp: no
# extra tools in the image; the broker logs nothing for such a probe).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${WARREN_PORT:-5672} && printf 'AMQP\\x00\\x00\\x09\\x01' >&3 && IFS= read -r -t 3 -n 1 _ <&3"]

# SIGTERM (docker stop) closes client connections with 320 and exits 0; warren handles it
# itself, which it must as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/warren"]
