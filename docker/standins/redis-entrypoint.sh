#!/bin/sh
# redis-server without a config file, as the official image runs it: protected mode off unless asked for.
set -e
if [ "$1" = redis-server ]; then
  case " $* " in *" --protected-mode "*) ;; *) set -- "$@" --protected-mode no ;; esac
fi
exec "$@"
