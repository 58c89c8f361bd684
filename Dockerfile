# Warren: multi-stage build of the release binary, run as a non-root user.
#   docker build -t warren .
#   docker run -p 5672:5672 -v warren-data:/var/lib/warren warren

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin warren \
    && install -m 0755 target/release/warren /usr/local/bin/warren

FROM debian:bookworm-slim
RUN groupadd --system warren \
    && useradd --system --gid warren --home-dir /var/lib/warren --shell /usr/sbin/nologin warren \
    && mkdir -p /var/lib/warren \
    && chown warren:warren /var/lib/warren
COPY --from=build /usr/local/bin/warren /usr/local/bin/warren

ENV WARREN_BIND=0.0.0.0 \
    WARREN_PORT=5672 \
    WARREN_DATA_DIR=/var/lib/warren
VOLUME /var/lib/warren
# 5671 (AMQPS) is served once WARREN_TLS_CERT and WARREN_TLS_KEY name mounted PEM files.
EXPOSE 5672 5671
USER warren

# Healthy once the listener answers the AMQP 0-9-1 protocol header with a frame
# (bash's /dev/tcp: no extra tools in the image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${WARREN_PORT:-5672} && printf 'AMQP\\x00\\x00\\x09\\x01' >&3 && IFS= read -r -t 3 -n 1 _ <&3"]

# SIGTERM (docker stop) closes client connections with 320 and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/warren"]
