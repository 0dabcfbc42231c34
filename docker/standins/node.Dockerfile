# Stand-in for node:20-bookworm-slim and node:20-bookworm (see build.sh): a Debian bookworm minbase root, this
# machine's Node 20 and npm 10 in /usr/local like the official images, user `node` (uid 1000), and the host's CA
# bundle, which npm needs here to reach the registry. Lacks the official node:20-bookworm's compilers: nothing the
# project installs builds a native addon from source.
FROM cifar-dp-standin/bookworm-minbase:latest
LABEL cifar-dp.standin="node:20 (docker/standins/build.sh)"
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY node-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
