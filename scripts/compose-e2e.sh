#!/usr/bin/env bash
# End-to-end test of docker-compose.yml, the way the README runs it: builds the image (on stand-in base images
# where Docker Hub cannot be reached: docker/standins/build.sh), starts Redis, the data service, 3 workers and the
# coordinator for one short epoch, and checks that
#   - the data service downloaded CIFAR-10 into an empty volume (from a mirror on the compose network,
#     scripts/compose-e2e.yml: a tar.gz of the local copy, via CIFAR10_URL/CIFAR10_MD5; the network has no way out);
#   - the README's command returns the coordinator's exit code, and all 3 workers computed jobs;
#   - no container has an anonymous volume;
#   - `docker compose cp coordinator:/model/. DIR` gives model.json, weights.bin, checkpoint.bin, eval.json,
#     metrics.jsonl; weights.bin and model.json are byte-identical to a local run with the same settings
#     (`npm run coordinator`, local threads), eval.json the same but for its timing (checkpoint.bin holds timings
#     and the workers' description too; the resumed run below checks the state it carries);
#   - a second run refuses the checkpoint in /model; after `docker compose down` (volumes kept),
#     `TRAIN_FLAGS=--resume` continues it to a second epoch without downloading again, byte-identical to a local
#     resumed run.
# Needs a Docker engine with compose v2 (docker/engine.sh starts one on Debian), root or the docker group, npm ci
# done, and a CIFAR-10 folder: $CIFAR10_DIR, else data/cifar-10-batches-bin, else /work/shared/cifar-10-batches-bin.
# Runs as compose project cifar-dp-e2e-<pid> with image cifar-dp-trainer:e2e-<pid> (removed at the end, and by
# the next run if this one was killed). Caches the archive in
# $E2E_CACHE; E2E_KEEP=1 keeps the logs and model files of a run that passed. Exit status 0: passed; 1: failed; 2: could not run (no engine, no data).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
started=$SECONDS
# Its own compose project and image tag per run: runs from several checkouts can share one engine.
project="cifar-dp-e2e-$$"
export E2E_TAG="e2e-$$"
cache="${E2E_CACHE:-/var/cache/cifar-dp-e2e}"
train_limit="${E2E_TRAIN_LIMIT:-5120}"
test_limit="${E2E_TEST_LIMIT:-1000}"
work="$(mktemp -d "${TMPDIR:-/tmp}/compose-e2e.XXXXXX")"

say() { printf '[compose-e2e %3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() { say "FAILED: $*"; say "logs and files are in $work"; exit 1; }
cannot() { say "cannot run: $*"; exit 2; }
compose() { docker compose -p "$project" -f docker-compose.yml -f scripts/compose-e2e.yml "$@"; }

docker info >/dev/null 2>&1 || cannot "no Docker engine answers (docker/engine.sh starts one)"
docker compose version >/dev/null 2>&1 || cannot "docker compose (v2) is not installed (docker/engine.sh installs it)"
data_dir="${CIFAR10_DIR:-}"
for candidate in "$data_dir" data/cifar-10-batches-bin /work/shared/cifar-10-batches-bin; do
  if [ -n "$candidate" ] && [ -f "$candidate/data_batch_1.bin" ]; then data_dir="$(cd "$candidate" && pwd)"; break; fi
done
[ -n "$data_dir" ] && [ -f "$data_dir/data_batch_1.bin" ] || cannot "no CIFAR-10 folder (set CIFAR10_DIR)"
[ -d node_modules/tsx ] || cannot "run npm ci first (the local run needs it)"

cleanup() {
  compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  docker rmi "cifar-dp-trainer:$E2E_TAG" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# What a killed run left behind (its process is gone).
for stale in $(docker ps -a --format '{{.Label "com.docker.compose.project"}}' | grep -E '^cifar-dp-e2e-[0-9]+$' | sort -u); do
  kill -0 "${stale##*-}" 2>/dev/null && continue
  E2E_ARCHIVE=/dev/null docker compose -p "$stale" -f docker-compose.yml -f scripts/compose-e2e.yml down -v -t 1 >/dev/null 2>&1 || true
  docker rmi "cifar-dp-trainer:e2e-${stale##*-}" >/dev/null 2>&1 || true
done

# ---- the archive the mirror serves: the CIFAR-10 files as cifar-10-binary.tar.gz would hold them ----
mkdir -p "$cache"
files=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin batches.meta.txt)
fingerprint="$(cd "$data_dir" && cat "${files[@]}" | sha256sum | cut -c1-16)"
archive="$cache/cifar-10-binary-$fingerprint.tar.gz"
if [ ! -s "$archive" ]; then
  say "packing $data_dir into $archive"
  staging="$(mktemp -d)"
  mkdir "$staging/cifar-10-batches-bin"
  for f in "${files[@]}"; do ln -s "$data_dir/$f" "$staging/cifar-10-batches-bin/$f"; done
  tar -C "$staging" --dereference --owner=0 --group=0 -cf - cifar-10-batches-bin | gzip -1 >"$archive.tmp"
  mv "$archive.tmp" "$archive"
  rm -rf "$staging"
fi
chmod 644 "$archive"
export E2E_ARCHIVE="$archive"
export CIFAR10_URL="http://mirror:8080/cifar-10-binary.tar.gz"
export CIFAR10_MD5="$(md5sum "$archive" | cut -d' ' -f1)"

# ---- images ----
say "base images (stand-ins where they cannot be pulled)"
docker/standins/build.sh
say "docker compose build"
compose build >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "docker compose build"; }
grep -oE 'Install checked\. @tensorflow/tfjs-node: (installed|not installed[^"]*)' "$work/build.log" | tail -1 | sed 's/^/  /' || true

# ---- run 1: one epoch on 3 workers, from empty volumes ----
flags="--train-limit $train_limit --test-limit $test_limit --backend fused"
export BATCH_SIZE=128 SHARDS=8 TRAINER_SECRET=e2e-secret TRAINER_NAMESPACE=cifar-dp-e2e
unset REDIS_URL WORKER_CONCURRENCY
up() { compose up --scale worker=3 --exit-code-from coordinator coordinator worker; } # the README's command

say "run 1: EPOCHS=1 TRAIN_FLAGS='$flags', 3 workers"
set +e
EPOCHS=1 TRAIN_FLAGS="$flags" up >"$work/up1.log" 2>&1
rc=$?
set -e
compose logs --no-color --no-log-prefix data >"$work/data1.log" 2>&1
[ "$rc" = 0 ] || { tail -40 "$work/up1.log"; fail "run 1: the command returned $rc"; }
grep -q "downloading $CIFAR10_URL" "$work/data1.log" || { cat "$work/data1.log"; fail "the data service did not download"; }
grep -q "MD5 $CIFAR10_MD5 is correct" "$work/data1.log" || { cat "$work/data1.log"; fail "no MD5 check in the data service's log"; }
grep -q "CIFAR-10 is in /data/cifar-10-batches-bin" "$work/data1.log" || fail "the data service did not unpack"
say "  data service: $(grep -o 'Downloaded .*' "$work/data1.log" | head -1) from the mirror, MD5 checked, unpacked"
# Each worker says how many jobs it did when it leaves the run (the run's end, or the stop after it).
compose logs --no-color worker >"$work/workers1.log" 2>&1
workers_done="$(grep -oE 'worker-[0-9]+ +\| Worker .*: left run [^ ]+ \(.*\) after [1-9][0-9]* jobs?' "$work/workers1.log" | grep -oE '^worker-[0-9]+' | sort -u | wc -l)"
[ "$workers_done" = 3 ] || { grep -E 'left run|refusing' "$work/workers1.log" || true; fail "$workers_done of 3 workers computed jobs"; }
say "  run 1 returned 0; 3 of 3 workers computed jobs: $(grep -oE 'after [0-9]+ jobs?' "$work/workers1.log" | tr '\n' ' ')"

# No anonymous volumes: every volume mounted in the project's containers is one of its two named volumes.
for id in $(docker ps -aq --filter "label=com.docker.compose.project=$project"); do
  docker inspect -f '{{.Name}}{{range .Mounts}} {{.Type}}:{{.Name}}{{end}}' "$id"
done >"$work/mounts.txt"
if grep -vE "^/$project-[a-z]+-[0-9]+( volume:${project}_(data|model)| bind:)*$" "$work/mounts.txt"; then
  fail "a container has a mount other than the named volumes (above)"
fi
say "  mounts: only the named volumes ($(wc -l <"$work/mounts.txt") containers)"

mkdir "$work/compose-1"
compose cp coordinator:/model/. "$work/compose-1" >/dev/null 2>&1 || fail "docker compose cp coordinator:/model/. DIR"

say "local run, same settings (npm run coordinator, local threads)"
npm run -s coordinator -- --data "$data_dir" --out "$work/local" --epochs 1 --batch-size 128 --shards 8 $flags \
  >"$work/local1.log" 2>&1 || { tail -20 "$work/local1.log"; fail "the local run"; }
cp -r "$work/local" "$work/local-1"

compare() { # compose-dir local-dir label
  local f a b
  for f in model.json weights.bin checkpoint.bin eval.json metrics.jsonl; do
    [ -s "$1/$f" ] || fail "$3: compose wrote no $f"
  done
  a="$(sha256sum <"$1/weights.bin" | cut -c1-64)"
  b="$(sha256sum <"$2/weights.bin" | cut -c1-64)"
  [ "$a" = "$b" ] || fail "$3: weights.bin differs: compose $a, local $b"
  cmp -s "$1/model.json" "$2/model.json" || fail "$3: model.json differs"
  # eval.json: the same evaluation; only the seconds it took may differ.
  node -e 'const [a, b] = process.argv.slice(1).map((f) => ({ ...JSON.parse(require("fs").readFileSync(f, "utf8")), seconds: 0 }));
    process.exit(JSON.stringify(a) === JSON.stringify(b) ? 0 : 1);' "$1/eval.json" "$2/eval.json" || fail "$3: eval.json differs"
  say "  $3: weights.bin sha256 $a, identical to the local run's; model.json too, eval.json but for its timing"
}
compare "$work/compose-1" "$work/local-1" "run 1"

# ---- run 2: the same command again refuses the checkpoint, and says what to do ----
say "run 2: the same command again"
set +e
EPOCHS=1 TRAIN_FLAGS="$flags" up >"$work/up2.log" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || fail "run 2: a second run over the checkpoint returned 0"
grep -q "already holds a run's checkpoint. Continue it with --resume, start afresh with --overwrite" "$work/up2.log" \
  || { tail -20 "$work/up2.log"; fail "run 2: not the checkpoint message"; }
say "  returned $rc: /model already holds a run's checkpoint (--resume / --overwrite)"

# ---- run 3: `docker compose down` keeps both volumes; resume to a second epoch, without a second download ----
compose down -t 5 >"$work/down.log" 2>&1 || fail "docker compose down"
say "run 3, after docker compose down: EPOCHS=2 TRAIN_FLAGS='$flags --resume'"
set +e
EPOCHS=2 TRAIN_FLAGS="$flags --resume" up >"$work/up3.log" 2>&1
rc=$?
set -e
compose logs --no-color --no-log-prefix data >"$work/data3.log" 2>&1
[ "$rc" = 0 ] || { tail -40 "$work/up3.log"; fail "run 3: the command returned $rc"; }
# down removed the data container: the one there now ran in run 3.
data_state="$(docker inspect -f '{{.State.StartedAt}} {{.State.ExitCode}}' "$project-data-1" 2>/dev/null || true)"
case "$data_state" in 0001-*|'' ) fail "run 3: the data service did not run ($data_state)" ;; *' 0') ;; *) fail "run 3: data exited: $data_state" ;; esac
! grep -q "downloading" "$work/data3.log" || fail "run 3: the data service downloaded again"
grep -q "Resuming from /model/checkpoint.bin: 1 epochs done" "$work/up3.log" || fail "run 3 did not resume"
say "  resumed from the checkpoint in the model volume; the data volume was kept (no download)"
mkdir "$work/compose-3"
compose cp coordinator:/model/. "$work/compose-3" >/dev/null 2>&1 || fail "docker compose cp after run 3"
npm run -s coordinator -- --data "$data_dir" --out "$work/local" --epochs 2 --batch-size 128 --shards 8 $flags --resume \
  >"$work/local3.log" 2>&1 || { tail -20 "$work/local3.log"; fail "the local resumed run"; }
compare "$work/compose-3" "$work/local" "run 3 (resumed)"

say "PASSED in $((SECONDS - started)) s"
if [ -n "${E2E_KEEP:-}" ]; then say "logs and files are in $work"; else rm -rf "$work"; fi
