# Stand-in for redis:7-alpine (see build.sh): Debian bookworm's redis-server (7.0) and redis-cli on the minbase
# root. Like the official image, protected mode is off by default (the entrypoint adds --protected-mode no) so
# other containers on the compose network can connect; the data folder is /data.
FROM cifar-dp-standin/bookworm-minbase:latest
LABEL cifar-dp.standin="redis:7 (docker/standins/build.sh)"
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /data && chown redis:redis /data \
 && redis-server --version
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
