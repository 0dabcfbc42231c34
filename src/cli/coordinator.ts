/** `npm run coordinator`: trains a model data-parallel over local threads or Redis workers, then evaluates it. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_TRAIN_OPTIONS, type TrainOptions } from '../options/train-options.ts';
import { type CommandHelp, type FlagTable, readCommandLine } from '../options/parse-flags.ts';
import { BACKEND_CHOICES } from '../compute/backend.ts';
import { autoReason } from '../compute/auto-backend.ts';
import { listenForStop, runCli } from './run-cli.ts';
import { MODELS, modelByName } from '../model/model-registry.ts';
import type { ModelDefinition } from '../model/model-definition.ts';
import { formatSummary } from '../model/model-summary.ts';
import { resolveDataDir } from '../data/data-dir.ts';
import { ensureCifar10 } from '../data/cifar10-download.ts';
import { loadCifar10 } from '../data/cifar10-dataset.ts';
import { parameterCount } from '../model/parameter-vector.ts';
import { createWorkerPool } from '../pool/create-worker-pool.ts';
import { ADAM_DEFAULTS } from '../train/adam.ts';
import { LR_SCHEDULES } from '../train/lr-schedule.ts';
import { OPTIMIZERS } from '../train/run-settings.ts';
import { LOSS_REDUCTIONS } from '../train/optimizer/optimizer.ts';
import { AUGMENTATIONS } from '../compute/training-recipe.ts';
import { RECIPE_PRESETS } from '../train/recipe-presets.ts';
import { parseLayerEpochs } from '../train/parameter-groups.ts';
import { stepsPerEpoch } from '../train/batch-plan.ts';
import type { RunSettings } from '../train/run-settings.ts';
import { assertCheckpointMatches, checkpointPath, readCheckpoint } from '../checkpoint/checkpoint.ts';
import { train } from '../train/trainer.ts';
import { evaluateTestSet, formatEvaluation } from '../eval/test-evaluation.ts';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import { EVAL_JSON } from '../report/report-data.ts';
import { checkRedis, parseRedisUrl } from '../pool/redis/connection.ts';
import { InvalidOptionError } from '../errors/index.ts';
import { crashPoint } from '../testing/crash-point.ts';

export const COORDINATOR_FLAGS: FlagTable<TrainOptions> = {
  data: { kind: 'string', key: 'data', help: 'CIFAR-10 binary folder (else $CIFAR10_DIR, else data/cifar-10-batches-bin)' },
  model: { kind: 'string', key: 'model', help: 'Network to train', choices: Object.keys(MODELS) },
  epochs: { kind: 'number', key: 'epochs', help: 'Epochs to train, may be fractional (on --resume: the total to reach)', min: 0, exclusiveMin: true },
  'batch-size': { kind: 'integer', key: 'batchSize', help: 'Images per optimizer step', min: 1 },
  'drop-last': { kind: 'boolean', key: 'dropLast', help: "Leave out each epoch's last partial batch" },
  optimizer: { kind: 'string', key: 'optimizer', help: 'adam (with PyTorch\'s defaults) or sgd (torch.optim.SGD)', choices: OPTIMIZERS },
  lr: { kind: 'number', key: 'lr', help: 'Learning rate', min: 0, exclusiveMin: true },
  momentum: { kind: 'number', key: 'momentum', help: "SGD's momentum", min: 0 },
  nesterov: { kind: 'boolean', key: 'nesterov', help: "SGD with Nesterov's momentum" },
  'lr-schedule': { kind: 'string', key: 'lrSchedule', help: 'Learning-rate schedule over the run', choices: LR_SCHEDULES },
  'warmup-epochs': { kind: 'number', key: 'warmupEpochs', help: 'Linear learning-rate warm-up, in epochs (airbench: where the peak is)', min: 0 },
  'weight-decay': { kind: 'number', key: 'weightDecay', help: "Weight decay: Adam's decoupled (AdamW), SGD's torch weight_decay; 0: none", min: 0 },
  'bn-bias-lr-scale': { kind: 'number', key: 'biasLrScale', help: "Batch norm's biases at this multiple of the learning rate (SGD)", min: 0, exclusiveMin: true },
  'loss-reduction': { kind: 'string', key: 'lossReduction', help: "The gradient of the batch's mean loss, or of its sum", choices: LOSS_REDUCTIONS },
  'train-layer-epochs': { kind: 'string', key: 'layerEpochs', help: 'Layers that train only in the first epochs, as layer=N,… (airbench: whiten=3)' },
  lookahead: { kind: 'boolean', key: 'lookahead', help: "airbench's lookahead: the weights pulled to their moving average every 5 steps" },
  augmentation: { kind: 'string', key: 'augmentation', help: 'Augmentation of the training images', choices: AUGMENTATIONS },
  augment: { kind: 'boolean', key: 'augment', help: 'Short for --augmentation crop-flip (random crop of the 4-pixel padded image, random flip)' },
  'label-smoothing': { kind: 'number', key: 'labelSmoothing', help: 'Label smoothing of the cross-entropy, in [0, 1)', min: 0 },
  tta: { kind: 'boolean', key: 'tta', help: "The final evaluation with test-time augmentation (airbench's 6 views)" },
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
  // A network's own recipe (airbench's) comes with --model: its values are the defaults any flag overrides.
  const argv = process.argv.slice(2);
  const preset = RECIPE_PRESETS[modelNamed(argv) ?? DEFAULT_TRAIN_OPTIONS.model] ?? {};
  const effective = { ...DEFAULT_TRAIN_OPTIONS, ...preset, data: resolveDataDir(undefined), redis: process.env.REDIS_URL || undefined };
  const parsed = readCommandLine(argv, HELP, COORDINATOR_FLAGS, effective, DEFAULT_TRAIN_OPTIONS);
  if (!parsed) return 0;
  const options = checkRecipe(parsed);
  const model = modelByName(options.model);
  if (options.summary) {
    console.log(formatSummary(model));
    return 0;
  }
  if (options.resume && options.overwrite) throw new InvalidOptionError('--resume and --overwrite contradict each other; pass one.');

  // What needs no data is checked first: an existing run in --out is continued with --resume, replaced with
  // --overwrite, and never silently lost; a --redis that does not answer is said before minutes of loading.
  const existing = await fs.stat(checkpointPath(options.out)).then(() => true, () => false);
  if (existing && !options.resume && !options.overwrite) {
    throw new InvalidOptionError(
      `${options.out} already holds a run's checkpoint. Continue it with --resume, start afresh with --overwrite, or choose another --out.`,
    );
  }
  const resumeFrom = options.resume ? await readCheckpoint(options.out) : undefined;
  if (options.redis) await checkRedis(parseRedisUrl(options.redis));

  // Data: download when absent, validate, and say what we have, as the tutorial does.
  await ensureCifar10(options.data, { log: (line) => console.log(line) });
  // Remote workers hold their own copies of the images: the coordinator then keeps only labels (~180 MB less),
  // unless the network's initialisation reads training images (airbench's whitening).
  const pixels = !options.redis || needsTrainingImages(model);
  const dataset = await loadCifar10(options.data, { trainLimit: options.trainLimit, testLimit: options.testLimit, pixels });
  console.log(`Classes: ${JSON.stringify(Object.fromEntries(dataset.classNames.map((n, i) => [n, i])))}`);
  console.log(`Train: ${dataset.train.count}×32×32×3   Test: ${dataset.test.count}×32×32×3   (from ${dataset.dir})`);

  // --out itself is created by the first checkpoint, so a run that fails to start leaves no empty folder.
  if (options.overwrite) await fs.rm(path.join(options.out, 'metrics.jsonl'), { force: true });
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
    recipe: {
      seed: options.seed, augmentation: options.augmentation, labelSmoothing: options.labelSmoothing,
      stepsPerEpoch: stepsPerEpoch(dataset.train.count, options.batchSize, options.dropLast),
    },
  });
  try {
    const settings: RunSettings = {
      model: model.name, parameterCount: parameterCount(model), seed: options.seed, batchSize: options.batchSize,
      shards: options.shards, lr: options.lr, ...ADAM_DEFAULTS, epochs: options.epochs,
      lrSchedule: options.lrSchedule, warmupEpochs: options.warmupEpochs, weightDecay: options.weightDecay,
      optimizer: options.optimizer, momentum: options.momentum, nesterov: options.nesterov, biasLrScale: options.biasLrScale,
      lossReduction: options.lossReduction, layerEpochs: options.layerEpochs, lookahead: options.lookahead, tta: options.tta,
      augmentation: options.augmentation, labelSmoothing: options.labelSmoothing, dropLast: options.dropLast,
      trainCount: dataset.train.count, testCount: dataset.test.count, dataFingerprint: dataset.fingerprint, backend: pool.backend,
      numerics: pool.numerics,
    };
    if (resumeFrom) {
      assertCheckpointMatches(resumeFrom, settings);
      log(`Resuming from ${checkpointPath(options.out)}: ${resumeFrom.progress.epochsDone} epochs done, step ${resumeFrom.progress.globalStep}.`);
    }
    const why = resumeFrom ? ' (the checkpoint\'s)' : options.backend === 'auto' ? ` (${autoReason(model.name, pool.backend)})` : '';
    log(`Backend: ${pool.backend}${why}. Workers: ${pool.describe()}. Model: ${model.name} (${settings.parameterCount} parameters). ` +
      `Batch ${settings.batchSize} in ${settings.shards} shards, ${describeOptimizer(settings)}, seed ${settings.seed}.`);
    if (pool.backend === 'node') log(`Numerics: ${settings.numerics} (recorded in the checkpoint; --resume and remote workers must match it).`);

    const outcome = await train({ settings, model, dataset, pool, outDir: options.out, resumeFrom, evalEvery: options.evalEvery, log, stopRequested });
    if (outcome.stopped) return stop.exitCode();
    log(`Model saved to ${path.join(options.out, 'model.json')} and weights.bin.`);
    if (options.evaluate) {
      crashPoint('final-eval:start');
      const report = await evaluateTestSet(pool, outcome.weightsVersion, dataset.test, dataset.classNames, settings.testCount, settings.tta);
      log(formatEvaluation(report));
      await writeFileAtomic(path.join(options.out, EVAL_JSON), JSON.stringify(report, null, 2) + '\n');
    }
    return 0;
  } finally {
    await pool.close();
  }
}

/** Whether the network's initialisation reads training images' pixels (airbench's whitening filters). */
function needsTrainingImages(model: ModelDefinition): boolean {
  return model.parameters.some((p) => typeof p.init === 'object' && 'whitening' in p.init);
}

/** "Adam lr 0.001" / "SGD (Nesterov, momentum 0.85) lr 0.00146, weight decay 1.36" for the banner. */
function describeOptimizer(s: RunSettings): string {
  const decay = s.weightDecay > 0 ? `, weight decay ${s.weightDecay}` : '';
  if (s.optimizer === 'adam') return `Adam${s.weightDecay > 0 ? 'W' : ''} lr ${s.lr}${decay}`;
  const momentum = s.momentum > 0 ? ` (${s.nesterov ? 'Nesterov, ' : ''}momentum ${s.momentum})` : '';
  return `SGD${momentum} lr ${s.lr.toPrecision(4)}${s.lrSchedule !== 'constant' ? ` (${s.lrSchedule})` : ''}${decay}`;
}

/** The --model value on the command line, if any (its recipe sets defaults before the flags are parsed). */
function modelNamed(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') break;
    if (argv[i] === '--model') return argv[i + 1];
    if (argv[i].startsWith('--model=')) return argv[i].slice('--model='.length);
  }
  return undefined;
}

/** Checks the recipe's flags against each other; --augment becomes --augmentation crop-flip. */
function checkRecipe<T extends TrainOptions>(options: T): T {
  if (options.labelSmoothing >= 1) throw new InvalidOptionError(`--label-smoothing must be below 1; got ${options.labelSmoothing}.`);
  if (options.augment) {
    if (options.augmentation !== 'none' && options.augmentation !== 'crop-flip') {
      throw new InvalidOptionError(`--augment means --augmentation crop-flip, but --augmentation is ${options.augmentation}; pass one of them.`);
    }
    options = { ...options, augmentation: 'crop-flip' };
  }
  if (options.optimizer === 'adam' && (options.momentum !== 0 || options.nesterov || options.biasLrScale !== 1)) {
    throw new InvalidOptionError('--momentum, --nesterov and --bn-bias-lr-scale are SGD settings: add --optimizer sgd, or leave them out with Adam.');
  }
  if (options.nesterov && options.momentum === 0) throw new InvalidOptionError('--nesterov needs a --momentum above 0.');
  parseLayerEpochs(options.layerEpochs);
  return options;
}

runCli(main);
