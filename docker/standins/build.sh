#!/usr/bin/env bash
# Stand-ins for the Docker Hub images that Dockerfile and docker-compose.yml name, for a Docker host that cannot
# pull them (ours: Docker Hub is not reachable, Debian's mirrors and the npm registry are). Tagged with the real
# names, so the project's own files build and run unchanged:
#   node:20-bookworm-slim, node:20-bookworm  a `debootstrap --variant=minbase bookworm` root, this machine's Node 20
#                                            (`command -v node`), npm $STANDIN_NPM from the npm registry (the
#                                            node:20 images carry npm 10.8.2), user node, the host's CA bundle
#   redis:7-alpine                           the same root with Debian's redis-server 7.0
# An image that is already there (pulled, or built by an earlier run) is kept; a missing one is pulled if that
# works, else built. The root file system and npm are cached in $STANDIN_CACHE, so a rebuild takes seconds.
#
# Usage: docker/standins/build.sh [--force] [--no-pull]
#   --force    rebuild the stand-ins even where the tags exist (never replaces an image that is not a stand-in)
#   --no-pull  do not try Docker Hub first
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${STANDIN_CACHE:-/var/cache/cifar-dp-standins}"
npm_version="${STANDIN_NPM:-10.8.2}"
mirror="${STANDIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ca_bundle="${STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
base=cifar-dp-standin/bookworm-minbase:latest
node_images=(node:20-bookworm-slim node:20-bookworm)
redis_images=(redis:7-alpine)

force=0 pull=1
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --no-pull) pull=0 ;;
    *) echo "build.sh: unknown argument $arg (see the comment at the top)" >&2; exit 2 ;;
  esac
done
say() { echo "[standins] $*"; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
is_standin() { [ -n "$(docker image inspect -f '{{index .Config.Labels "cifar-dp.standin"}}' "$1" 2>/dev/null)" ]; }

# The images of a list that need building: absent (and not pullable), or stand-ins under --force.
missing() {
  local image
  for image in "$@"; do
    if have "$image"; then
      if [ "$force" = 1 ] && is_standin "$image"; then echo "$image"; continue; fi
      say "$image: present$(is_standin "$image" && echo ' (stand-in)' || true)" >&2
      continue
    fi
    if [ "$pull" = 1 ] && timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
      say "$image: pulled" >&2
      continue
    fi
    echo "$image"
  done
}

# The minbase root, as an image to build FROM.
ensure_base() {
  if have "$base" && [ "$force" = 0 ]; then return; fi
  mkdir -p "$cache"
  local tarball="$cache/bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
      say "installing Debian's debootstrap"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    local root
    root="$(mktemp -d "$cache/root.XXXXXX")"
    say "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { say "debootstrap failed; see $cache/debootstrap.log"; rm -rf "$root"; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  say "importing $tarball as $base"
  docker import "$tarball" "$base" >/dev/null
}

build_node() {
  local node version ctx npm_tgz
  node="$(readlink -f "$(command -v node)")"
  version="$("$node" --version)"
  case "$version" in v20.*) ;; *) say "this machine's node is $version, not Node 20"; exit 1 ;; esac
  [ -s "$ca_bundle" ] || { say "no CA bundle at $ca_bundle"; exit 1; }
  mkdir -p "$cache"
  npm_tgz="$cache/npm-$npm_version.tgz"
  if [ ! -s "$npm_tgz" ]; then
    say "npm pack npm@$npm_version (from the npm registry)"
    (cd "$cache" && npm pack -q "npm@$npm_version" >/dev/null)
  fi
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' RETURN
  cp "$node" "$ctx/node"
  cp "$ca_bundle" "$ctx/ca-certificates.crt"
  cp "$here/node-entrypoint.sh" "$ctx/"
  mkdir "$ctx/npm" && tar -C "$ctx/npm" --strip-components=1 -xzf "$npm_tgz"
  say "building the Node stand-in: node $version, npm $npm_version"
  docker build -f "$here/node.Dockerfile" -t cifar-dp-standin/node:20 "$ctx" >"$cache/build-node.log" 2>&1 \
    || { tail -20 "$cache/build-node.log"; say "building the Node stand-in failed"; exit 1; }
  for image in "$@"; do docker tag cifar-dp-standin/node:20 "$image"; say "$image: stand-in built"; done
}

build_redis() {
  say "building the Redis stand-in: Debian bookworm's redis-server"
  mkdir -p "$cache"
  docker build -f "$here/redis.Dockerfile" -t cifar-dp-standin/redis:7 "$here" >"$cache/build-redis.log" 2>&1 \
    || { tail -20 "$cache/build-redis.log"; say "building the Redis stand-in failed"; exit 1; }
  for image in "$@"; do docker tag cifar-dp-standin/redis:7 "$image"; say "$image: stand-in built"; done
}

mapfile -t node_todo < <(missing "${node_images[@]}")
mapfile -t redis_todo < <(missing "${redis_images[@]}")
if [ "${#node_todo[@]}" -gt 0 ] || [ "${#redis_todo[@]}" -gt 0 ]; then ensure_base; fi
if [ "${#node_todo[@]}" -gt 0 ]; then build_node "${node_todo[@]}"; fi
if [ "${#redis_todo[@]}" -gt 0 ]; then build_redis "${redis_todo[@]}"; fi
