# Multi-stage: build with the Rust toolchain, run from a slim image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin stewrd

# `stewrd browser-host`: Debian's Chromium beside the binary, nothing else
# (no database credentials or master keys reach this container).
#   docker build --target browser-host -t stewrd-browser-host .
FROM debian:bookworm-slim AS browser-host
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates chromium \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent stewrd
COPY --from=build /src/target/release/stewrd /usr/local/bin/stewrd
USER 10001
ENV STEWRD_BROWSER_HOST_LISTEN=0.0.0.0:8091
EXPOSE 8091
ENTRYPOINT ["stewrd"]
CMD ["browser-host"]

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent stewrd
COPY --from=build /src/target/release/stewrd /usr/local/bin/stewrd
USER 10001
ENV STEWRD_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["stewrd"]
CMD ["api"]
