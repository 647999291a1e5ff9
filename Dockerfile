# syntax=docker/dockerfile:1
# Build: single-file executables with `bun build --compile`; runtime: debian-slim with the network tools
# the agent drives (iproute2, nftables, iptables, ipset).
FROM oven/bun:1.3 AS build
WORKDIR /src
COPY package.json package-lock.json bunfig.toml tsconfig.json ./
RUN bun install --frozen-lockfile --production --ignore-scripts || bun install --production --ignore-scripts
COPY cmd ./cmd
COPY internal ./internal
COPY migrations ./migrations
COPY manifests ./manifests
# The agent is bundled like the lab bundles it (internal/lab/bundle.ts: names kept for logs and stacks);
# the DaemonSet runs it with BUN_JSC_useBaselineJIT=0 (internal/agent/runtime.ts, docs/operations.md "Memory").
RUN bun build --compile --minify --sourcemap cmd/kosmos-controller.ts --outfile /out/kosmos-controller \
 && bun build --compile --minify-whitespace --minify-syntax --sourcemap cmd/kosmos-agent.ts --outfile /out/kosmos-agent \
 && bun build --compile --minify --sourcemap cmd/kosmos-clustertree.ts --outfile /out/kosmos-clustertree \
 && bun build --compile --minify --sourcemap cmd/kosmosctl.ts --outfile /out/kosmosctl

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables iptables ipset iputils-ping bash ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
COPY --from=build /src/migrations /usr/local/share/kosmos/migrations
COPY --from=build /src/manifests /usr/local/share/kosmos/manifests
ENV KOSMOS_MIGRATIONS_DIR=/usr/local/share/kosmos/migrations KOSMOS_MANIFESTS_DIR=/usr/local/share/kosmos/manifests
USER 0
ENTRYPOINT ["/usr/local/bin/kosmos-agent"]
