# Image for the coordinator and the workers (docker-compose.yml runs both from it).
# Building needs internet: npm downloads the packages and @tensorflow/tfjs-node fetches libtensorflow
# (the native backend). Should that download fail, the optional package is skipped and the image computes with
# the wasm backend instead; `docker compose run --rm worker node -e "require('@tensorflow/tfjs-node')"` tells which.

# ---- build: full Debian image, with the compilers node-gyp falls back to when no prebuilt addon fits ----
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --include=optional --no-audit --no-fund && npm cache clean --force

# ---- runtime: slim image with node_modules from the build stage ----
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    CIFAR10_DIR=/data/cifar-10-batches-bin
COPY --from=build /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY workers ./workers
# /data: the CIFAR-10 files (downloaded on first use); /model: model.json, weights.bin, checkpoint.bin, metrics.
RUN mkdir -p /data /model && chown node:node /data /model
USER node
VOLUME ["/data", "/model"]
# tsx runs the TypeScript sources directly; plain `node` (not npm) so SIGTERM reaches the process.
# --max-semi-space-size=2: a small young generation, as `npm run worker` uses (see src/pool/redis/worker-heap.ts).
CMD ["node", "--max-semi-space-size=2", "--import", "tsx", "workers/remote-worker.ts"]
