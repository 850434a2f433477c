# syntax=docker/dockerfile:1
# The Stowage CLI built from this repository, installed as a user installs it (the packed packages).
#   docker build -t stowage:0.1.0 .
#   docker run --rm -v "$PWD:/data" -v /srv/backups:/backups stowage:0.1.0 status
# `stowage schedule print --format compose` prints a service running this image's daemon.
ARG NODE_VERSION=22

# ——— build: compile, bundle and pack every public package (workspace:* rewritten) ———
FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN npx -y pnpm@10.34.9 install --frozen-lockfile \
 && npx -y pnpm@10.34.9 build \
 && mkdir /tarballs \
 && for dir in packages/* apps/*; do \
      [ "$(node -p "require('./$dir/package.json').private === true")" = true ] && continue; \
      (cd "$dir" && npx -y pnpm@10.34.9 pack --pack-destination /tarballs >/dev/null) || exit 1; \
    done

# ——— install: npm installs the tarballs; native modules compile here (python3, make, g++) when no prebuilt binary fits ———
FROM node:${NODE_VERSION}-bookworm AS install
WORKDIR /opt/stowage
COPY --from=build /tarballs /tarballs
RUN npm init -y >/dev/null && npm install --omit=dev --no-audit --no-fund /tarballs/*.tgz && npm cache clean --force

# ——— runtime: slim Node, no toolchain, not root ———
FROM node:${NODE_VERSION}-bookworm-slim
COPY --from=install /opt/stowage /opt/stowage
ENV PATH=/opt/stowage/node_modules/.bin:$PATH \
    NODE_ENV=production
# /data: the application's database and stowage.config.yaml; /backups: a local destination.
RUN mkdir -p /data /backups && chown node:node /data /backups
VOLUME ["/data", "/backups"]
WORKDIR /data
USER node
HEALTHCHECK --interval=5m --timeout=1m --start-period=1m --retries=1 CMD stowage status --quiet
ENTRYPOINT ["stowage"]
CMD ["daemon"]
