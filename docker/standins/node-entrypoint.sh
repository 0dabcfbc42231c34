#!/bin/sh
# As the official node images' entrypoint: a first argument that is a flag or not a command goes to node.
set -e
if [ "${1#-}" != "$1" ] || ! command -v -- "$1" >/dev/null 2>&1; then
  set -- node "$@"
fi
exec "$@"
