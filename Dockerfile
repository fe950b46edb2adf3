# syntax=docker/dockerfile:1
# Build stage: Node 24 LTS with npm 11 (it honours package.json `allowScripts`: only the install scripts
# listed there run). Compile TypeScript, then cut the tree down to what production loads.
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN test "$(npm --version | cut -d. -f1)" -ge 11
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/prune-production.sh ./scripts/
RUN npm run build && sh scripts/prune-production.sh

# Runtime stage: Node 24 + Debian's FFmpeg (5.1: libx264, aac, xfade), production dependencies only
# (no embedded PostgreSQL: the image always talks to a configured database), running as `node` (uid 1000).
FROM node:24-bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# The data directory (local mode): mount a volume here that uid 1000 can write (the output, the clip cache).
# The image's own /app/data belongs to `node`; a bind mount keeps its host ownership, so `chown 1000:1000`
# the host directory or run with `--user "$(id -u):$(id -g)"`. Temp files go to /tmp.
ENV LOCAL_STORAGE_ROOT=/app/data
RUN mkdir -p /app/data && chown node:node /app/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY sql ./sql
COPY package.json ./
USER node
CMD ["node", "dist/main.js"]
