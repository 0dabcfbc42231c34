/** `npm run coordinator`: trains a model data-parallel over local threads or Redis workers, then evaluates it. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_TRAIN_OPTIONS, type TrainOptions } from '../options/train-options.ts';
import { type CommandHelp, type FlagTable, readCommandLine } from '../options/parse-flags.ts';
import { BACKEND_CHOICES } from '../compute/backend.ts';
import { autoReason } from '../compute/auto-backend.ts';
import { listenForStop, runCli } from './run-cli.ts';
import { MODELS, modelByName } from '../model/model-registry.ts';
import { formatSummary } from '../model/model-summary.ts';
import { resolveDataDir } from '../data/data-dir.ts';
import { ensureCifar10 } from '../data/cifar10-download.ts';
import { loadCifar10 } from '../data/cifar10-dataset.ts';
import { parameterCount } from '../model/parameter-vector.ts';
import { createWorkerPool } from '../pool/create-worker-pool.ts';
import { ADAM_DEFAULTS } from '../train/adam.ts';
import { LR_SCHEDULES } from '../train/lr-schedule.ts';
import type { RunSettings } from '../train/run-settings.ts';
import { assertCheckpointMatches, checkpointPath, readCheckpoint } from '../checkpoint/checkpoint.ts';
import { train } from '../train/trainer.ts';
import { evaluateTestSet, formatEvaluation } from '../eval/test-evaluation.ts';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import { EVAL_JSON } from '../report/report-data.ts';
import { InvalidOptionError } from '../errors/index.ts';
import { crashPoint } from '../testing/crash-point.ts';

export const COORDINATOR_FLAGS: FlagTable<TrainOptions> = {
  data: { kind: 'string', key: 'data', help: 'CIFAR-10 binary folder (else $CIFAR10_DIR, else data/cifar-10-batches-bin)' },
  model: { kind: 'string', key: 'model', help: 'Network to train', choices: Object.keys(MODELS) },
  epochs: { kind: 'integer', key: 'epochs', help: 'Epochs to train (on --resume: the total to reach)', min: 1 },
  'batch-size': { kind: 'integer', key: 'batchSize', help: 'Images per optimizer step', min: 1 },
  lr: { kind: 'number', key: 'lr', help: 'Adam learning rate', min: 0, exclusiveMin: true },
  'lr-schedule': { kind: 'string', key: 'lrSchedule', help: 'Learning-rate schedule over the run', choices: LR_SCHEDULES },
  'warmup-epochs': { kind: 'number', key: 'warmupEpochs', help: 'Linear learning-rate warm-up, in epochs', min: 0 },
  'weight-decay': { kind: 'number', key: 'weightDecay', help: 'Decoupled weight decay (AdamW); 0 is plain Adam', min: 0 },
  augment: { kind: 'boolean', key: 'augment', help: 'Random crop (4-pixel padding) and horizontal flip of training images' },
  'label-smoothing': { kind: 'number', key: 'labelSmoothing', help: 'Label smoothing of the cross-entropy, in [0, 1)', min: 0 },
  seed: { kind: 'integer', key: 'seed', help: 'Seed of the initial weights and the shuffles', min: 0 },
  shards: { kind: 'integer', key: 'shards', help: 'Parts each batch is cut into (part of the run: results depend on it, not on --workers)', min: 1 },
  workers: { kind: 'integer', key: 'workers', help: 'Local workers, one per CPU unless told; with 2 or more, this thread is one of them', min: 1 },
  out: { kind: 'string', key: 'out', help: 'Folder for model, checkpoint, metrics.jsonl, eval.json' },
  'train-limit': { kind: 'integer', key: 'trainLimit', help: 'Use only the first N training images', min: 1 },
  'test-limit': { kind: 'integer', key: 'testLimit', help: 'Use only the first N test images', min: 1 },
  backend: { kind: 'string', key: 'backend', help: 'Compute backend of the workers', choices: BACKEND_CHOICES },
  resume: { kind: 'boolean', key: 'resume', help: 'Continue the run whose checkpoint is in --out' },
  overwrite: { kind: 'boolean', key: 'overwrite', help: 'Start afresh even though --out holds a checkpoint' },
  'eval-every': { kind: 'integer', key: 'evalEvery', help: 'Also evaluate the test set every N epochs (0: only at the end)', min: 0 },
  eval: { kind: 'boolean', key: 'evaluate', help: 'Evaluate the test set after training (--no-eval skips it)' },
  summary: { kind: 'boolean', key: 'summary', help: 'Print the layer table and exit' },
  redis: { kind: 'string', key: 'redis', help: 'Redis URL: use remote `npm run worker` processes (else $REDIS_URL)' },
  'shard-timeout': { kind: 'number', key: 'shardTimeoutSeconds', help: 'Give up when shards are not back after this many seconds', min: 0, exclusiveMin: true },
};

const HELP: CommandHelp = {
  usage: 'npm run coordinator -- [flags]',
  description: 'Trains a network on CIFAR-10, data-parallel over local worker threads (or remote workers with --redis), then evaluates it.',
  examples: [
    'npm run coordinator                                   # the tutorial: 10 epochs at batch 10, then Acc on the test set',
    'npm run coordinator -- --epochs 30 --augment --lr-schedule onecycle --lr 0.002 --batch-size 32',
    'npm run coordinator -- --model bn-cnn --batch-size 128 --out runs/bn',
    'npm run coordinator -- --out runs/bn --resume          # continue a stopped run',
    'npm run coordinator -- --redis redis://host:6379 --batch-size 128 --shards 8',
  ],
  environment: [
    ['CIFAR10_DIR', 'CIFAR-10 binary folder (the default of --data)'],
    ['REDIS_URL', 'Redis URL (the default of --redis): train with remote workers'],
    ['TRAINER_SECRET', 'with --redis: only results signed with this secret are used'],
    ['TRAINER_NAMESPACE', 'with --redis: Redis key namespace (default cifar-dp)'],
    ['REDIS_TLS_CA_FILE', 'PEM of a private CA for rediss:// URLs'],
    ['TRAINER_REDIS_OUTAGE_SECONDS', 'with --redis: how long a lost Redis is waited for (default 60)'],
  ],
};

async function main(): Promise<number> {
  const effective = { ...DEFAULT_TRAIN_OPTIONS, data: resolveDataDir(undefined), redis: process.env.REDIS_URL || undefined };
  const options = readCommandLine(process.argv.slice(2), HELP, COORDINATOR_FLAGS, effective, DEFAULT_TRAIN_OPTIONS);
  if (!options) return 0;
  const model = modelByName(options.model);
  if (options.summary) {
    console.log(formatSummary(model));
    return 0;
  }
  if (options.labelSmoothing >= 1) throw new InvalidOptionError(`--label-smoothing must be below 1; got ${options.labelSmoothing}.`);
  if (options.resume && options.overwrite) throw new InvalidOptionError('--resume and --overwrite contradict each other; pass one.');

  // Data: download when absent, validate, and say what we have, as the tutorial does.
  await ensureCifar10(options.data, { log: (line) => console.log(line) });
  // Remote workers hold their own copies of the images: the coordinator then keeps only labels (~180 MB less).
  const dataset = await loadCifar10(options.data, { trainLimit: options.trainLimit, testLimit: options.testLimit, pixels: !options.redis });
  console.log(`Classes: ${JSON.stringify(Object.fromEntries(dataset.classNames.map((n, i) => [n, i])))}`);
  console.log(`Train: ${dataset.train.count}×32×32×3   Test: ${dataset.test.count}×32×32×3   (from ${dataset.dir})`);

  // An existing run in --out is continued with --resume, replaced with --overwrite, and never silently lost.
  const existing = await fs.stat(checkpointPath(options.out)).then(() => true, () => false);
  if (existing && !options.resume && !options.overwrite) {
    throw new InvalidOptionError(
      `${options.out} already holds a run's checkpoint. Continue it with --resume, start afresh with --overwrite, or choose another --out.`,
    );
  }
  const resumeFrom = options.resume ? await readCheckpoint(options.out) : undefined;
  if (options.overwrite) {
    await fs.rm(path.join(options.out, 'metrics.jsonl'), { force: true });
  }
  await fs.mkdir(options.out, { recursive: true });
  // eval.json describes the weights it was computed from: once training changes them, it is stale until the
  // final evaluation writes it again.
  if (!resumeFrom || resumeFrom.progress.epochsDone < options.epochs) await fs.rm(path.join(options.out, EVAL_JSON), { force: true });

  const log = (line: string) => console.log(line);
  const stop = listenForStop((signal) => log(`\n${signal}: finishing the current step, then writing a checkpoint (press again to exit at once).`));
  const stopRequested = () => stop.signal() !== undefined;
  const pool = await createWorkerPool({
    options, model, parameterCount: parameterCount(model), dataset, log,
    // A resumed run keeps its backend, whatever --backend says now.
    backend: resumeFrom ? resumeFrom.settings.backend : options.backend,
    recipe: { seed: options.seed, augment: options.augment, labelSmoothing: options.labelSmoothing },
  });
  try {
    const settings: RunSettings = {
      model: model.name, parameterCount: parameterCount(model), seed: options.seed, batchSize: options.batchSize,
      shards: options.shards, lr: options.lr, ...ADAM_DEFAULTS, epochs: options.epochs,
      lrSchedule: options.lrSchedule, warmupEpochs: options.warmupEpochs, weightDecay: options.weightDecay,
      augment: options.augment, labelSmoothing: options.labelSmoothing,
      trainCount: dataset.train.count, testCount: dataset.test.count, dataFingerprint: dataset.fingerprint, backend: pool.backend,
      numerics: pool.numerics,
    };
    if (resumeFrom) {
      assertCheckpointMatches(resumeFrom, settings);
      log(`Resuming from ${checkpointPath(options.out)}: ${resumeFrom.progress.epochsDone} epochs done, step ${resumeFrom.progress.globalStep}.`);
    }
    const why = resumeFrom ? ' (the checkpoint\'s)' : options.backend === 'auto' ? ` (${autoReason(model.name, pool.backend)})` : '';
    log(`Backend: ${pool.backend}${why}. Workers: ${pool.describe()}. Model: ${model.name} (${settings.parameterCount} parameters). ` +
      `Batch ${settings.batchSize} in ${settings.shards} shards, Adam lr ${settings.lr}, seed ${settings.seed}.`);
    if (pool.backend === 'node') log(`Numerics: ${settings.numerics} (recorded in the checkpoint; --resume and remote workers must match it).`);

    const outcome = await train({ settings, model, dataset, pool, outDir: options.out, resumeFrom, evalEvery: options.evalEvery, log, stopRequested });
    if (outcome.stopped) return stop.exitCode();
    log(`Model saved to ${path.join(options.out, 'model.json')} and weights.bin.`);
    if (options.evaluate) {
      crashPoint('final-eval:start');
      const report = await evaluateTestSet(pool, outcome.weightsVersion, dataset.test, dataset.classNames, settings.testCount);
      log(formatEvaluation(report));
      await writeFileAtomic(path.join(options.out, EVAL_JSON), JSON.stringify(report, null, 2) + '\n');
    }
    return 0;
  } finally {
    await pool.close();
  }
}

runCli(main);
