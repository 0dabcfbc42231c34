/** `npm run eval`: classifies the test set with a saved model, spread over the worker pool; writes eval.json beside the model. */
import os from 'node:os';
import path from 'node:path';
import type { BackendChoice } from '../compute/backend.ts';
import { BACKEND_CHOICES } from '../compute/backend.ts';
import { type CommandHelp, type FlagTable, readCommandLine } from '../options/parse-flags.ts';
import { runCli } from './run-cli.ts';
import { resolveDataDir } from '../data/data-dir.ts';
import { ensureCifar10 } from '../data/cifar10-download.ts';
import { loadCifar10 } from '../data/cifar10-dataset.ts';
import { loadLayersModelWeights } from '../model/layers-model-files.ts';
import { createWorkerPool } from '../pool/create-worker-pool.ts';
import { evaluateTestSet, formatEvaluation } from '../eval/test-evaluation.ts';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import { EVAL_JSON } from '../report/report-data.ts';

export interface EvalOptions {
  model: string;
  data: string;
  workers: number;
  backend: BackendChoice;
  testLimit: number | undefined;
  redis: string | undefined;
  shardTimeoutSeconds: number;
}

export const DEFAULT_EVAL_OPTIONS: EvalOptions = {
  model: 'model',
  data: 'data/cifar-10-batches-bin',
  workers: Math.max(1, os.availableParallelism()),
  backend: 'auto',
  testLimit: undefined,
  redis: undefined,
  shardTimeoutSeconds: 600,
};

const EVAL_FLAGS: FlagTable<EvalOptions> = {
  model: { kind: 'string', key: 'model', help: 'Folder holding model.json and weights.bin' },
  data: { kind: 'string', key: 'data', help: 'CIFAR-10 binary folder (else $CIFAR10_DIR, else data/cifar-10-batches-bin)' },
  workers: { kind: 'integer', key: 'workers', help: 'Local worker threads (one per CPU unless told)', min: 1 },
  backend: { kind: 'string', key: 'backend', help: 'Compute backend', choices: BACKEND_CHOICES },
  'test-limit': { kind: 'integer', key: 'testLimit', help: 'Evaluate only the first N test images', min: 1 },
  redis: { kind: 'string', key: 'redis', help: 'Redis URL: evaluate on remote workers (else $REDIS_URL)' },
  'shard-timeout': { kind: 'number', key: 'shardTimeoutSeconds', help: 'Give up when results are not back after this many seconds', min: 0, exclusiveMin: true },
};

const HELP: CommandHelp = {
  usage: 'npm run eval -- [flags]',
  description: 'Classifies the CIFAR-10 test set with a saved model; prints Acc, per-class accuracy and the confusion matrix, writes eval.json.',
  examples: ['npm run eval', 'npm run eval -- --model runs/bn --workers 2', 'npm run eval -- --model runs/bn --redis redis://redis-host:6379'],
  environment: [
    ['CIFAR10_DIR', 'CIFAR-10 binary folder (the default of --data)'],
    ['REDIS_URL', 'Redis URL (the default of --redis): evaluate on remote workers'],
    ['TRAINER_SECRET', 'with --redis: only results signed with this secret are used'],
  ],
};

async function main(): Promise<number> {
  const effective = { ...DEFAULT_EVAL_OPTIONS, data: resolveDataDir(undefined), redis: process.env.REDIS_URL || undefined };
  const options = readCommandLine(process.argv.slice(2), HELP, EVAL_FLAGS, effective, DEFAULT_EVAL_OPTIONS);
  if (!options) return 0;
  const { model, weights } = await loadLayersModelWeights(options.model);
  await ensureCifar10(options.data, { log: (line) => console.log(line) });
  const dataset = await loadCifar10(options.data, { testLimit: options.testLimit, trainLimit: 1 });
  const pool = await createWorkerPool({
    options, model, parameterCount: weights.length, dataset, backend: options.backend, log: (line) => console.log(line),
  });
  try {
    console.log(`Evaluating ${path.join(options.model, 'model.json')} (${model.name}) on ${dataset.test.count} test images with ${pool.describe()}.`);
    await pool.publishWeights(0, weights);
    const report = await evaluateTestSet(pool, 0, dataset.test, dataset.classNames);
    console.log(formatEvaluation(report));
    await writeFileAtomic(path.join(options.model, EVAL_JSON), JSON.stringify(report, null, 2) + '\n');
    return 0;
  } finally {
    await pool.close();
  }
}

runCli(main);
