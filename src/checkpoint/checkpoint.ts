import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../errors/index.ts';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import { type RunSettings, TUTORIAL_RECIPE } from '../train/run-settings.ts';
import type { SgdState } from '../train/sgd.ts';
import { type EpochMetrics, metricsPath } from '../train/metrics-log.ts';
import { portableNumerics } from '../compute/numerics-identity.ts';
import { decodeFile, encodeFile, float64FromHex, float64ToHex, FormatProblem } from './checkpoint-format.ts';

/** Where a run stands; enough, with the weights and Adam's state, to continue it bit for bit. */
export interface RunProgress {
  epochsDone: number;
  stepInEpoch: number;
  globalStep: number;
  epochLossSum: number;
  epochCorrect: number;
  epochSeen: number;
  elapsedSeconds: number;
}

export interface Checkpoint {
  settings: RunSettings;
  progress: RunProgress;
  weights: Float32Array;
  /** Adam's moments and step count (runs with --optimizer adam). */
  adam?: { m: Float32Array; v: Float32Array; step: number };
  /** SGD's momentum buffer, the ranges that have one yet, and its step count (--optimizer sgd). */
  sgd?: SgdState;
  /** The lookahead's moving average of the weights (--lookahead). */
  lookahead?: Float32Array;
  /**
   * The metrics line of every finished epoch (epochsDone of them, in order). metrics.jsonl is written from
   * this, so an epoch the checkpoint counts as done never lacks its line, whenever the process died.
   */
  history: readonly EpochMetrics[];
}

export const CHECKPOINT_FILE = 'checkpoint.bin';
const FORMAT = 'cifar-dp-checkpoint';
const VERSION = 3;
/**
 * Version 1 had no epoch history (it is read from metrics.jsonl instead, see readCheckpoint); versions 1 and 2
 * knew only Adam and the crop-and-flip augmentation as a boolean `augment` (their runs had the tutorial's
 * values of every later setting).
 */
const READABLE_VERSIONS = [1, 2, 3];

/** Type of every RunSettings field; typed so a new field in RunSettings fails to compile until listed here. */
const SETTING_TYPES: { readonly [K in keyof RunSettings]-?: 'string' | 'number' | 'boolean' } = {
  model: 'string',
  parameterCount: 'number',
  seed: 'number',
  batchSize: 'number',
  shards: 'number',
  lr: 'number',
  beta1: 'number',
  beta2: 'number',
  eps: 'number',
  epochs: 'number',
  lrSchedule: 'string',
  warmupEpochs: 'number',
  weightDecay: 'number',
  optimizer: 'string',
  momentum: 'number',
  nesterov: 'boolean',
  biasLrScale: 'number',
  lossReduction: 'string',
  layerEpochs: 'string',
  lookahead: 'boolean',
  tta: 'boolean',
  augmentation: 'string',
  labelSmoothing: 'number',
  dropLast: 'boolean',
  trainCount: 'number',
  testCount: 'number',
  dataFingerprint: 'string',
  backend: 'string',
  numerics: 'string',
};
const SETTING_KEYS = Object.keys(SETTING_TYPES) as (keyof RunSettings)[];

/** The option that sets each setting, for messages. */
const SETTING_FLAGS: { readonly [K in keyof RunSettings]-?: string } = {
  model: '--model',
  parameterCount: '--model',
  seed: '--seed',
  batchSize: '--batch-size',
  shards: '--shards',
  lr: '--lr',
  beta1: 'Adam beta1',
  beta2: 'Adam beta2',
  eps: 'Adam eps',
  epochs: '--epochs',
  lrSchedule: '--lr-schedule',
  warmupEpochs: '--warmup-epochs',
  weightDecay: '--weight-decay',
  optimizer: '--optimizer',
  momentum: '--momentum',
  nesterov: '--nesterov',
  biasLrScale: '--bn-bias-lr-scale',
  lossReduction: '--loss-reduction',
  layerEpochs: '--train-layer-epochs',
  lookahead: '--lookahead',
  tta: '--tta',
  augmentation: '--augmentation',
  labelSmoothing: '--label-smoothing',
  dropLast: '--drop-last',
  trainCount: '--train-limit',
  testCount: '--test-limit',
  dataFingerprint: '--data (the data set files differ)',
  backend: '--backend',
  numerics: 'the native engine (TensorFlow version, threads, oneDNN, CPU)',
};

const COUNTERS = ['epochsDone', 'stepInEpoch', 'globalStep', 'epochCorrect', 'epochSeen'] as const;
const DOUBLES = ['epochLossSum', 'elapsedSeconds'] as const;

export function checkpointPath(outDir: string): string {
  return path.join(outDir, CHECKPOINT_FILE);
}

/** Writes `<outDir>/checkpoint.bin` atomically (creating outDir): a crash leaves the previous checkpoint intact. */
export async function writeCheckpoint(outDir: string, checkpoint: Checkpoint): Promise<void> {
  const file = checkpointPath(outDir);
  const { settings, progress, adam, sgd, lookahead, history } = checkpoint;
  const problems = [...settingsProblems(settings), ...progressProblems(progress), ...historyProblems(history, progress.epochsDone)];
  if (settings.optimizer === 'adam' && !adam) problems.push('an Adam run without Adam\'s state');
  if (settings.optimizer === 'sgd' && !sgd) problems.push('an SGD run without its momentum buffer');
  if (settings.lookahead !== (lookahead !== undefined)) problems.push(`lookahead ${settings.lookahead ? 'on without its average' : 'off with an average'}`);
  for (const step of [adam?.step, sgd?.step]) if (step !== undefined && (!Number.isSafeInteger(step) || step < 0)) problems.push(`an optimizer step count of ${step}`);
  const arrays = stateArrays(checkpoint);
  for (const [name, array] of arrays) {
    if (array.length !== settings.parameterCount) problems.push(`${name} has ${array.length} values, expected ${settings.parameterCount}`);
  }
  if (problems.length > 0) throw new CheckpointError(`Refusing to write an inconsistent checkpoint to ${file}: ${problems.join('; ')}.`);

  const header = {
    format: FORMAT,
    version: VERSION,
    settings: Object.fromEntries(SETTING_KEYS.map((k) => [k, settings[k]])),
    // Readable copy; the exact values of the doubles are in `float64Bits`.
    progress: { ...pick(progress), ...Object.fromEntries(DOUBLES.map((k) => [k, Number.isFinite(progress[k]) ? progress[k] : null])) },
    float64Bits: Object.fromEntries(DOUBLES.map((k) => [k, float64ToHex(progress[k])])),
    ...(adam ? { adamStep: adam.step } : {}),
    ...(sgd ? { sgdStep: sgd.step, sgdStarted: sgd.started } : {}),
    history,
  };
  const bytes = encodeFile(header, arrays.map(([name, data]) => ({ name, length: data.length, data })));
  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(file, bytes);
}

/** Reads `<outDir>/checkpoint.bin`; CheckpointError (naming the file) when it is missing, truncated or corrupt. */
export async function readCheckpoint(outDir: string): Promise<Checkpoint> {
  const file = checkpointPath(outDir);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CheckpointError(
        `There is no checkpoint at ${file}, so there is nothing to resume. Run without --resume to start a new run, ` +
          `or pass the --out folder of the run you want to continue.`,
        { cause: error },
      );
    }
    throw new CheckpointError(`Cannot read the checkpoint ${file} (${code ?? String(error)}).`, { cause: error });
  }

  let decoded;
  try {
    decoded = decodeFile(bytes);
  } catch (error) {
    if (!(error instanceof FormatProblem)) throw error;
    throw new CheckpointError(describeProblem(file, error.kind, error.message), { cause: error });
  }
  const corrupt = (why: string) => new CheckpointError(describeProblem(file, 'corrupt', why));

  const header = decoded.header as Record<string, unknown>;
  if (header.format !== FORMAT || !READABLE_VERSIONS.includes(header.version as number)) {
    throw corrupt(`its header is not a version ${READABLE_VERSIONS.join(' or ')} ${FORMAT} (format ${JSON.stringify(header.format)}, version ${JSON.stringify(header.version)})`);
  }
  const settings = upgradeSettings(header.settings, header.version as number);
  const progressIn = header.progress as Record<string, unknown>;
  const bits = header.float64Bits as Record<string, unknown>;
  if (!isRecord(settings) || !isRecord(progressIn) || !isRecord(bits)) throw corrupt('its header lacks settings or progress');
  const progress = { ...pick(progressIn as unknown as RunProgress) } as RunProgress;
  for (const k of DOUBLES) {
    const value = float64FromHex(bits[k]);
    if (value === undefined) throw corrupt(`its header has no exact value for progress.${k}`);
    progress[k] = value;
  }
  const problems = [...settingsProblems(settings), ...progressProblems(progress)];
  const arrays = decoded.arrays;
  const adam = settings.optimizer === 'adam';
  const expected = ['weights', ...(adam ? ['adam.m', 'adam.v'] : ['sgd.momentum']), ...(settings.lookahead ? ['lookahead.ema'] : [])];
  if (arrays.size !== expected.length) problems.push(`it holds ${arrays.size} arrays, expected ${expected.length} (${expected.join(', ')})`);
  for (const name of expected) {
    const array = arrays.get(name);
    if (!array) problems.push(`it has no ${name}`);
    else if (array.length !== settings.parameterCount) {
      problems.push(`${name} has ${array.length} values, but the model has ${settings.parameterCount} parameters`);
    }
  }
  const step = adam ? header.adamStep : header.sgdStep;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) problems.push(`${adam ? 'adamStep' : 'sgdStep'} is ${JSON.stringify(step)}`);
  const started = header.sgdStarted;
  if (!adam && !(Array.isArray(started) && started.every((r) => Array.isArray(r) && r.length === 2 && r.every((v) => Number.isSafeInteger(v) && v >= 0)))) {
    problems.push('its SGD state does not say which ranges have a momentum buffer');
  }
  const complete = header.version !== 1;
  const history = complete ? header.history : await historyFromMetricsFile(outDir, progress.epochsDone);
  problems.push(...historyProblems(history, progress.epochsDone, complete));
  if (problems.length > 0) throw corrupt(problems.join('; '));

  return {
    settings: Object.fromEntries(SETTING_KEYS.map((k) => [k, settings[k]])) as unknown as RunSettings,
    progress,
    weights: arrays.get('weights')!,
    ...(adam
      ? { adam: { m: arrays.get('adam.m')!, v: arrays.get('adam.v')!, step: step as number } }
      : { sgd: { momentum: arrays.get('sgd.momentum')!, started: started as [number, number][], step: step as number } }),
    ...(settings.lookahead ? { lookahead: arrays.get('lookahead.ema')! } : {}),
    history: history as EpochMetrics[],
  };
}

/** The checkpoint's float arrays by name, in the order they are written. */
function stateArrays(checkpoint: Checkpoint): [string, Float32Array][] {
  const { weights, adam, sgd, lookahead } = checkpoint;
  return [
    ['weights', weights],
    ...(adam ? ([['adam.m', adam.m], ['adam.v', adam.v]] as [string, Float32Array][]) : []),
    ...(sgd ? ([['sgd.momentum', sgd.momentum]] as [string, Float32Array][]) : []),
    ...(lookahead ? ([['lookahead.ema', lookahead]] as [string, Float32Array][]) : []),
  ];
}

/** Settings as this version names them, from a checkpoint of any readable version. */
function upgradeSettings(settings: unknown, version: number): RunSettings {
  if (!isRecord(settings)) return settings as RunSettings;
  // Written before numerics were recorded: the portable backends had the same bytes then; node's are unknown.
  const numerics = settings.numerics ?? (settings.backend === 'node' ? 'node: not recorded' : typeof settings.backend === 'string' ? portableNumerics(settings.backend as 'wasm') : undefined);
  if (version >= 3) return { ...settings, numerics } as unknown as RunSettings;
  const { augment, ...rest } = settings;
  return { ...TUTORIAL_RECIPE, ...rest, numerics, augmentation: augment === true ? 'crop-flip' : 'none' } as unknown as RunSettings;
}

/**
 * A version 1 checkpoint's history: the last line of each finished epoch in metrics.jsonl, where it is there
 * (such a checkpoint may count an epoch whose line was lost: that line stays lost).
 */
async function historyFromMetricsFile(outDir: string, epochsDone: number): Promise<EpochMetrics[]> {
  const text = await readFile(metricsPath(outDir), 'utf8').catch(() => '');
  const byEpoch = new Map<number, EpochMetrics>();
  for (const line of text.split('\n')) {
    try {
      const value = JSON.parse(line) as EpochMetrics;
      if (isRecord(value) && Number.isSafeInteger(value.epoch) && value.epoch >= 1 && value.epoch <= epochsDone) byEpoch.set(value.epoch, value);
    } catch {
      // an unreadable line: skipped
    }
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

/**
 * Throws a CheckpointError listing every setting whose value in the checkpoint differs from this run's, with
 * both values. `epochs` may grow on resume — unless the learning rate follows a schedule, whose curve spans
 * the run's epochs.
 */
export function assertCheckpointMatches(checkpoint: Checkpoint, expected: RunSettings): void {
  const epochsMayGrow = checkpoint.settings.lrSchedule === 'constant' && checkpoint.settings.warmupEpochs === 0;
  const differences = SETTING_KEYS.filter((k) => !(k === 'epochs' && epochsMayGrow) && !Object.is(checkpoint.settings[k], expected[k])).map(
    (k) => `  ${k} (${SETTING_FLAGS[k]}): checkpoint ${show(checkpoint.settings[k])}, this run ${show(expected[k])}`,
  );
  if (differences.length === 0) return;
  throw new CheckpointError(
    `The checkpoint was written with other settings, so --resume cannot continue it:\n${differences.join('\n')}\n` +
      `Resume with the checkpoint's settings, or start a new run without --resume (or with another --out).`,
  );
}

function describeProblem(file: string, kind: FormatProblem['kind'], why: string): string {
  switch (kind) {
    case 'not-a-checkpoint':
      return `${file} is not a checkpoint written by this trainer (${why}). Move it away, or run without --resume to start a new run.`;
    case 'truncated':
      return `The checkpoint ${file} is truncated (${why}): it was cut short, e.g. copied incompletely. It cannot be resumed; restore a complete copy or run without --resume to start over.`;
    case 'corrupt':
      return `The checkpoint ${file} is corrupt (${why}). It cannot be resumed; restore a good copy or run without --resume to start over.`;
  }
}

function settingsProblems(settings: unknown): string[] {
  if (!isRecord(settings)) return ['settings are missing'];
  const problems: string[] = [];
  for (const k of SETTING_KEYS) {
    const value = settings[k];
    if (typeof value !== SETTING_TYPES[k] || (typeof value === 'number' && !Number.isFinite(value))) {
      problems.push(`setting ${k} is ${JSON.stringify(value) ?? 'missing'}`);
    }
  }
  const count = settings.parameterCount;
  if (typeof count === 'number' && (!Number.isSafeInteger(count) || count <= 0)) problems.push(`setting parameterCount is ${count}`);
  return problems;
}

function progressProblems(progress: RunProgress): string[] {
  const problems: string[] = [];
  for (const k of COUNTERS) {
    const value: unknown = progress[k];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) problems.push(`progress.${k} is ${JSON.stringify(value) ?? 'missing'}`);
  }
  for (const k of DOUBLES) if (typeof progress[k] !== 'number') problems.push(`progress.${k} is not a number`);
  return problems;
}

/**
 * Metrics objects of finished epochs in increasing epoch order: one per epoch 1..epochsDone when `complete`
 * (what this version writes), else a subset (a version 1 checkpoint's, recovered from metrics.jsonl).
 */
function historyProblems(history: unknown, epochsDone: number, complete = true): string[] {
  if (!Array.isArray(history)) return ['its epoch history is missing'];
  if (complete && history.length !== epochsDone) return [`its epoch history holds ${history.length} epochs, but ${epochsDone} are done`];
  const bad = history.findIndex((m, i) =>
    !isRecord(m) || typeof m.epoch !== 'number' || !Number.isSafeInteger(m.epoch) || m.epoch > epochsDone ||
    (complete ? m.epoch !== i + 1 : m.epoch <= (i > 0 ? (history[i - 1] as EpochMetrics).epoch : 0)) ||
    typeof m.loss !== 'number' || typeof m.acc !== 'number' || typeof m.time !== 'number');
  return bad < 0 ? [] : [`entry ${bad + 1} of its epoch history is not the metrics of a finished epoch in order`];
}

function pick(progress: RunProgress): Partial<RunProgress> {
  return Object.fromEntries([...COUNTERS, ...DOUBLES].map((k) => [k, progress[k]]));
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
