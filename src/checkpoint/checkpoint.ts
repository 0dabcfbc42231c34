import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../errors/index.ts';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import type { RunSettings } from '../train/run-settings.ts';
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
  adam: { m: Float32Array; v: Float32Array; step: number };
  /**
   * The metrics line of every finished epoch (epochsDone of them, in order). metrics.jsonl is written from
   * this, so an epoch the checkpoint counts as done never lacks its line, whenever the process died.
   */
  history: readonly EpochMetrics[];
}

export const CHECKPOINT_FILE = 'checkpoint.bin';
const FORMAT = 'cifar-dp-checkpoint';
const VERSION = 2;
/** Version 1 had no epoch history: it is read from metrics.jsonl instead (see readCheckpoint). */
const READABLE_VERSIONS = [1, 2];

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
  augment: 'boolean',
  labelSmoothing: 'number',
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
  augment: '--augment',
  labelSmoothing: '--label-smoothing',
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
  const { settings, progress, weights, adam, history } = checkpoint;
  const problems = [...settingsProblems(settings), ...progressProblems(progress), ...historyProblems(history, progress.epochsDone)];
  if (!Number.isSafeInteger(adam.step) || adam.step < 0) problems.push(`adam.step is ${adam.step}`);
  for (const [name, array] of [['weights', weights], ['adam.m', adam.m], ['adam.v', adam.v]] as const) {
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
    adamStep: adam.step,
    history,
  };
  const bytes = encodeFile(header, [
    { name: 'weights', length: weights.length, data: weights },
    { name: 'adam.m', length: adam.m.length, data: adam.m },
    { name: 'adam.v', length: adam.v.length, data: adam.v },
  ]);
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
  const settings = header.settings as RunSettings;
  // Written before numerics were recorded: the portable backends had the same bytes then; node's are unknown.
  if (isRecord(settings) && settings.numerics === undefined && typeof settings.backend === 'string') {
    (settings as { numerics: string }).numerics = settings.backend === 'node' ? 'node: not recorded' : portableNumerics(settings.backend as 'wasm');
  }
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
  const step = header.adamStep;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) problems.push(`adamStep is ${JSON.stringify(step)}`);
  const arrays = decoded.arrays;
  if (arrays.size !== 3) problems.push(`it holds ${arrays.size} arrays, expected 3 (weights, adam.m, adam.v)`);
  for (const name of ['weights', 'adam.m', 'adam.v']) {
    const array = arrays.get(name);
    if (!array) problems.push(`it has no ${name}`);
    else if (array.length !== settings.parameterCount) {
      problems.push(`${name} has ${array.length} values, but the model has ${settings.parameterCount} parameters`);
    }
  }
  const complete = header.version !== 1;
  const history = complete ? header.history : await historyFromMetricsFile(outDir, progress.epochsDone);
  problems.push(...historyProblems(history, progress.epochsDone, complete));
  if (problems.length > 0) throw corrupt(problems.join('; '));

  return {
    settings: Object.fromEntries(SETTING_KEYS.map((k) => [k, settings[k]])) as unknown as RunSettings,
    progress,
    weights: arrays.get('weights')!,
    adam: { m: arrays.get('adam.m')!, v: arrays.get('adam.v')!, step: step as number },
    history: history as EpochMetrics[],
  };
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
