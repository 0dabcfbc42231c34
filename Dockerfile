# Image for the coordinator and the workers (docker-compose.yml runs both from it).
# Building needs internet: npm downloads the packages and @tensorflow/tfjs-node fetches libtensorflow
# (the native backend). Should that download fail, the optional package is skipped and the image computes with
# the fused/wasm backends instead; the install check below prints which.

# ---- build: full Debian image, with the compilers node-gyp falls back to when no prebuilt addon fits ----
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm 10 can fail and still exit 0 ("Exit handler never called!"), leaving node_modules partial or empty:
# `npm ls` checks the installed tree against the lockfile, so such a build stops here.
RUN npm ci --omit=dev --include=optional --no-audit --no-fund --no-update-notifier \
 && npm ls --omit=dev --all --no-update-notifier >/dev/null \
 && npm cache clean --force

# ---- runtime: slim image with node_modules from the build stage ----
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    CIFAR10_DIR=/data/cifar-10-batches-bin
COPY --from=build /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY workers ./workers
# The install works: tsx loads both entry points with all they import, and the modules they load on demand.
RUN node --import tsx src/cli/coordinator.ts --help >/dev/null \
 && node --import tsx workers/remote-worker.ts --help >/dev/null \
 && node --import tsx --input-type=module -e "await import('./src/pool/redis/redis-pool.ts'); \
      for (const m of ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu']) await import(m); \
      const node = await import('@tensorflow/tfjs-node').then(() => 'installed', () => 'not installed: computes with fused/wasm'); \
      console.log('Install checked. @tensorflow/tfjs-node: ' + node);" \
 && rm -rf /tmp/tsx-*
# /data: the CIFAR-10 files; /model: model.json, weights.bin, checkpoint.bin, metrics. Mount volumes there
# (docker-compose.yml does); no VOLUME here, which would give every container without them anonymous volumes.
RUN mkdir -p /data /model && chown node:node /data /model
USER node
# tsx runs the TypeScript sources directly; plain `node` (not npm) so SIGTERM reaches the process.
# --max-semi-space-size=2: a small young generation, as `npm run worker` uses (see src/pool/redis/worker-heap.ts).
CMD ["node", "--max-semi-space-size=2", "--import", "tsx", "workers/remote-worker.ts"]
