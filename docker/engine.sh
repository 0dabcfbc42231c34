#!/usr/bin/env bash
# Makes a Docker engine with compose v2 answer on a Debian machine without systemd (ours), for
# scripts/compose-e2e.sh and .ci/run:
#   - no dockerd: installs Debian's docker.io;
#   - no engine answering: starts dockerd by hand (overlay2), log in $DOCKERD_LOG, and waits for it;
#   - no `docker compose`: unpacks the plugin of Debian trixie's docker-compose package (compose v2; bookworm's
#     docker-compose is v1, which rejects the file's top-level `name:`) into /usr/libexec/docker/cli-plugins/.
# Exit status 0 when `docker info` and `docker compose version` work; otherwise it says why and exits 1.
# Changing anything needs root; an engine that already answers needs nothing.
set -euo pipefail
log="${DOCKERD_LOG:-/var/log/cifar-dp-dockerd.log}"
say() { echo "[engine] $*"; }
no() { say "$*"; exit 1; }
compose_ok() { docker compose version 2>/dev/null | grep -qE 'version v?2\.'; }

if docker info >/dev/null 2>&1 && compose_ok; then exit 0; fi
[ "$(id -u)" = 0 ] || no "no Docker engine with compose v2 answers, and only root can start one"
command -v apt-get >/dev/null || no "no Docker engine answers, and this is not a Debian machine (no apt-get)"

if ! command -v dockerd >/dev/null; then
  say "installing Debian's docker.io"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
    || no "apt-get install docker.io failed"
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: $log)"
  setsid nohup dockerd --storage-driver=overlay2 >>"$log" 2>&1 </dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -5 "$log" | sed 's/^/  /'; no "dockerd did not come up within 30 s (see $log)"; }
fi

if ! compose_ok; then
  say "installing compose v2 from Debian trixie's docker-compose package"
  apt_dir="$(mktemp -d)"
  trap 'rm -rf "$apt_dir"' EXIT
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/unpacked"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  apt-get "${apt_opts[@]}" update -qq >/dev/null 2>&1 || no "apt-get update of trixie failed"
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download docker-compose >/dev/null 2>&1) \
    || no "apt-get download docker-compose (trixie) failed"
  dpkg-deb -x "$apt_dir"/docker-compose_*.deb "$apt_dir/unpacked"
  install -D -m 755 "$apt_dir/unpacked/usr/libexec/docker/cli-plugins/docker-compose" \
    /usr/libexec/docker/cli-plugins/docker-compose
  compose_ok || no "docker compose still does not answer as v2"
fi
say "$(docker version -f 'engine {{.Server.Version}}' 2>/dev/null), $(docker compose version)"
