/**
 * A benchmark child process: the coordinator side of one configuration (1 local thread, N local threads, or
 * a Redis pool served by remote worker processes). It loads the data set, creates the pool as the coordinator
 * does (src/pool/create-worker-pool.ts), and answers the parent's requests over the IPC channel (see
 * ./runner-messages.ts) until told to close. Started by ./tfjs-runner-client.ts; not meant to be run by hand.
 */
import { loadCifar10, type Cifar10Dataset } from '../src/data/cifar10-dataset.ts';
import { evaluateTestSet } from '../src/eval/test-evaluation.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { parameterCount } from '../src/model/parameter-vector.ts';
import { createWorkerPool } from '../src/pool/create-worker-pool.ts';
import type { RunnerConfig, RunnerReply, RunnerRequest } from './runner-messages.ts';
import { TimedPool } from './timed-pool.ts';
import { measureTraining } from './training-throughput.ts';
import { checkpointStart, freshStart, type StartingPoint } from './starting-point.ts';
import { RemoteCpuProbe } from './remote-cpu.ts';
import { newThreadIds, processCpuProbe, threadCpuProbe, threadIds, type BusyProbe } from './worker-busy.ts';

const model = modelByName('tutorial');
const log = (line: string) => process.stderr.write(`${line}\n`);
const quiet = () => undefined;
const maxRssKB = () => process.resourceUsage().maxRSS;

let dataset: Cifar10Dataset | undefined;
let pool: TimedPool | undefined;
let cpuProbe: BusyProbe | null = null;
let start: StartingPoint | undefined;
let remoteCpu: RemoteCpuProbe | null = null;
/** Last weights version published to the pool (versions only grow). */
let version = -1;

async function init(config: RunnerConfig): Promise<RunnerReply> {
  // As `npm run coordinator` does: with remote workers the coordinator keeps labels only (they hold the images).
  start = config.checkpoint ? await checkpointStart(config.checkpoint, model) : freshStart(model, 1);
  dataset = await loadCifar10(config.data, { pixels: !config.redis });
  const threadsBefore = threadIds();
  const inner = await createWorkerPool({
    options: { redis: config.redis, workers: config.workers, shardTimeoutSeconds: 300 },
    model, parameterCount: parameterCount(model), dataset, backend: config.backend, log,
  });
  // The pool's worker threads are the threads that appeared while it started.
  const workerThreads = config.redis ? [] : newThreadIds(threadsBefore, threadIds());
  const perStep = workerThreads.length > 0 ? threadCpuProbe(workerThreads) : null;
  if (!config.redis && workerThreads.length !== config.workers) {
    log(`Note: ${workerThreads.length} new threads for ${config.workers} workers; compute times may be off.`);
  }
  cpuProbe = config.redis ? processCpuProbe(config.workerPids ?? []) : null;
  remoteCpu = config.redis ? new RemoteCpuProbe(config.redis) : null;
  pool = new TimedPool(inner, perStep);
  return {
    kind: 'ready', describe: pool.describe(), backend: pool.backend, trainImages: dataset.train.count,
    testImages: dataset.test.count, maxRssKB: maxRssKB(),
  };
}

async function handle(request: RunnerRequest): Promise<RunnerReply | null> {
  switch (request.kind) {
    case 'init':
      return init(request.config);
    case 'train': {
      const { p, d } = ready();
      const result = await measureTraining(p, model, d, { ...request, firstVersion: version + 1, start: start! }, cpuProbe, quiet, remoteCpu);
      version = result.lastVersion;
      return {
        kind: 'trained', batch: request.batch, steps: request.steps, seconds: result.seconds, imagesPerSecond: result.imagesPerSecond,
        breakdown: result.breakdown, maxRssKB: maxRssKB(),
      };
    }
    case 'eval': {
      const { p, d } = ready();
      if (version < 0) {
        version = 0;
        await p.publishWeights(version, start!.weights);
      }
      const report = await evaluateTestSet(p, version, d.test, d.classNames);
      return { kind: 'evaluated', images: report.images, seconds: report.seconds, accuracy: report.accuracy, maxRssKB: maxRssKB() };
    }
    case 'close':
      await pool?.close();
      pool = undefined;
      remoteCpu?.close();
      return { kind: 'closed' };
  }
}

function ready(): { p: TimedPool; d: Cifar10Dataset } {
  if (!pool || !dataset) throw new Error('tfjs runner: "init" must come first.');
  return { p: pool, d: dataset };
}

function reply(message: RunnerReply): Promise<void> {
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

if (!process.send) {
  process.stderr.write('bench/tfjs-runner.ts is started by `npm run bench`, not by hand.\n');
  process.exit(2);
}

// One request at a time, in order.
let queue = Promise.resolve();
process.on('message', (request: RunnerRequest) => {
  queue = queue.then(async () => {
    try {
      const answer = await handle(request);
      if (answer) await reply(answer);
      if (request.kind === 'close') process.disconnect();
    } catch (error) {
      const e = error as Error;
      await reply({ kind: 'error', message: e?.message ?? String(error), stack: e?.stack });
    }
  });
});
// The parent went away: leave too (the pool's threads would otherwise keep this process alive).
process.on('disconnect', () => {
  void Promise.resolve(pool?.close()).finally(() => process.exit(0));
});
