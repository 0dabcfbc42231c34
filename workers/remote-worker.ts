/**
 * `npm run worker`: computes shards for coordinators started with --redis. Start as many as you like, on as many
 * machines as you like, at any moment of a run; each needs its own copy of the CIFAR-10 files (downloaded when
 * absent, like the coordinator does) and serves the runs whose data match them.
 */
import os from 'node:os';
import type { BackendChoice } from '../src/compute/backend.ts';
import { BACKEND_CHOICES } from '../src/compute/backend.ts';
import { type CommandHelp, type FlagTable, readCommandLine } from '../src/options/parse-flags.ts';
import { listenForStop, runCli } from '../src/cli/run-cli.ts';
import { testDelayMs } from '../src/testing/test-delay.ts';
import { resolveDataDir } from '../src/data/data-dir.ts';
import { ensureCifar10 } from '../src/data/cifar10-download.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { checkRedis, parseRedisUrl } from '../src/pool/redis/connection.ts';
import { resolveNamespace } from '../src/pool/redis/keys.ts';
import { secretFromEnv } from '../src/pool/redis/result-signing.ts';
import { RemoteWorker } from '../src/pool/redis/remote-worker.ts';

export interface WorkerOptions {
  redis: string;
  data: string;
  concurrency: number;
  backend: BackendChoice;
  namespace: string | undefined;
  lockSeconds: number;
  name: string | undefined;
  verbose: boolean;
}

export const DEFAULT_WORKER_OPTIONS: WorkerOptions = {
  redis: 'redis://127.0.0.1:6379',
  data: 'data/cifar-10-batches-bin',
  concurrency: Math.max(1, os.availableParallelism()),
  backend: 'auto',
  namespace: undefined,
  lockSeconds: 30,
  name: undefined,
  verbose: false,
};

export const WORKER_FLAGS: FlagTable<WorkerOptions> = {
  redis: { kind: 'string', key: 'redis', help: 'Redis URL, redis://[user:password@]host:port[/db] or rediss:// for TLS (else $REDIS_URL)' },
  data: { kind: 'string', key: 'data', help: 'CIFAR-10 binary folder (else $CIFAR10_DIR, else data/cifar-10-batches-bin); downloaded when absent' },
  concurrency: { kind: 'integer', key: 'concurrency', help: 'Compute threads = jobs at once', min: 1 },
  backend: { kind: 'string', key: 'backend', help: "Compute backend; 'auto' uses the one each run announces", choices: BACKEND_CHOICES },
  namespace: { kind: 'string', key: 'namespace', help: 'Serve the runs of this Redis key namespace (else $TRAINER_NAMESPACE, else cifar-dp)' },
  'lock-seconds': { kind: 'number', key: 'lockSeconds', help: "BullMQ job lock: a killed worker's job is recomputed elsewhere after 2–3× this", min: 0, exclusiveMin: true },
  name: { kind: 'string', key: 'name', help: 'Worker name in logs and jobs (default host:pid)' },
  verbose: { kind: 'boolean', key: 'verbose', help: 'Log every job' },
};

const HELP: CommandHelp = {
  usage: 'npm run worker -- [flags]',
  description: 'A remote worker: computes the shards of any run announced on its Redis, for coordinators started with --redis.',
  examples: [
    'npm run worker -- --redis redis://trainer:pw@redis-host:6379 --data /data/cifar-10-batches-bin',
    'REDIS_URL=redis://redis-host:6379 TRAINER_SECRET=... npm run worker -- --concurrency 4',
  ],
  environment: [
    ['REDIS_URL', 'Redis URL (the default of --redis)'],
    ['CIFAR10_DIR', 'CIFAR-10 binary folder (the default of --data)'],
    ['TRAINER_SECRET', 'sign results with this secret (runs that require one refuse others)'],
    ['TRAINER_NAMESPACE', 'Redis key namespace (the default of --namespace)'],
    ['REDIS_TLS_CA_FILE', 'PEM of a private CA for rediss:// URLs'],
  ],
};

async function main(): Promise<number> {
  const effective = { ...DEFAULT_WORKER_OPTIONS, data: resolveDataDir(undefined), redis: process.env.REDIS_URL || DEFAULT_WORKER_OPTIONS.redis };
  const options = readCommandLine(process.argv.slice(2), HELP, WORKER_FLAGS, effective, DEFAULT_WORKER_OPTIONS);
  if (!options) return 0;
  const log = (line: string) => console.log(line);
  const target = parseRedisUrl(options.redis);
  const namespace = resolveNamespace(options.namespace);
  await checkRedis(target);

  await ensureCifar10(options.data, { log });
  const dataset = await loadCifar10(options.data);
  const delay = testDelayMs('TRAINER_TEST_JOB_DELAY_MS');
  const worker = new RemoteWorker({
    target, namespace, dataset, concurrency: options.concurrency, backend: options.backend, lockSeconds: options.lockSeconds,
    name: options.name, secret: secretFromEnv(), log, verbose: options.verbose, ...(delay > 0 ? { jobDelayMs: delay } : {}),
  });
  log(
    `Worker ${worker.id}: CIFAR-10 from ${dataset.dir} (${dataset.train.count} training, ${dataset.test.count} test images, ` +
      `fingerprint ${dataset.fingerprint.slice(0, 12)}…). Redis ${target.display}, namespace ${namespace}, ` +
      `${options.concurrency} thread${options.concurrency === 1 ? '' : 's'}${secretFromEnv() ? ', signing results' : ''}. Waiting for runs.`,
  );

  const stop = listenForStop(
    (signal) => {
      log(`${signal}: finishing the jobs in hand, then leaving (press again to leave at once; those jobs then go to other workers).`);
      void worker.stop(false);
    },
    (signal, code) => {
      log(`${signal} again: leaving now.`);
      void worker.stop(true).finally(() => process.exit(code));
    },
  );
  worker.start();
  await worker.stopped;
  log(`Worker ${worker.id}: stopped.`);
  return stop.exitCode();
}

runCli(main);
