import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadCifar10 } from '../../src/data/cifar10-dataset.ts';
import type { Cifar10Dataset } from '../../src/data/cifar10-dataset.ts';
import { modelByName } from '../../src/model/model-registry.ts';
import { parameterCount } from '../../src/model/parameter-vector.ts';
import { ThreadPool } from '../../src/pool/threads/thread-pool.ts';
import { portableNumerics } from '../../src/compute/numerics-identity.ts';
import { ADAM_DEFAULTS } from '../../src/train/adam.ts';
import { type RunSettings, TUTORIAL_RECIPE } from '../../src/train/run-settings.ts';
import { train, type TrainerOutcome } from '../../src/train/trainer.ts';
import { stepsPerEpoch } from '../../src/train/batch-plan.ts';
import type { Checkpoint } from '../../src/checkpoint/checkpoint.ts';
import type { WorkerPool } from '../../src/pool/worker-pool.ts';

export function sha256(bytes: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).digest('hex');
}

/** Settings of a small run; on node, `numerics` is a placeholder that recordRun replaces with its pool's. */
export function settingsFor(dataset: Cifar10Dataset, overrides: Partial<RunSettings> = {}): RunSettings {
  const model = modelByName(overrides.model ?? 'tutorial');
  const backend = overrides.backend ?? 'wasm';
  return {
    numerics: backend === 'node' ? NATIVE_PLACEHOLDER : portableNumerics(backend),
    model: model.name, parameterCount: parameterCount(model), seed: 5, batchSize: 10, shards: 3, lr: 1e-3,
    ...ADAM_DEFAULTS, ...TUTORIAL_RECIPE, epochs: 2, trainCount: dataset.train.count, testCount: dataset.test.count,
    dataFingerprint: dataset.fingerprint, backend: 'wasm', ...overrides,
  };
}

const NATIVE_PLACEHOLDER = 'node: the pool\'s';

export interface RecordedRun extends TrainerOutcome {
  /** SHA-256 of the weights after each step, in order. */
  readonly stepHashes: string[];
}

/** Trains in-process with a local ThreadPool (or the given pool) and records the weights' hash after every step. */
export async function recordRun(
  dataset: Cifar10Dataset,
  settings: RunSettings,
  opts: { threads?: number; callerComputes?: boolean; pool?: WorkerPool; resumeFrom?: Checkpoint; outDir?: string; stopAfterStep?: number } = {},
): Promise<RecordedRun> {
  const pool = opts.pool ?? (await ThreadPool.create({
    model: settings.model, parameterCount: settings.parameterCount, dataset, threads: opts.threads ?? 1, backend: settings.backend,
    recipe: {
      seed: settings.seed, augmentation: settings.augmentation, labelSmoothing: settings.labelSmoothing,
      stepsPerEpoch: stepsPerEpoch(dataset.train.count, settings.batchSize, settings.dropLast),
    }, callerComputes: opts.callerComputes,
  }));
  if (settings.numerics === NATIVE_PLACEHOLDER) settings = { ...settings, numerics: pool.numerics };
  const outDir = opts.outDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'run-')));
  const stepHashes: string[] = [];
  let lastStep = 0;
  try {
    const outcome = await train({
      settings, model: modelByName(settings.model), dataset, pool, outDir, resumeFrom: opts.resumeFrom, log: () => undefined,
      stopRequested: () => opts.stopAfterStep !== undefined && lastStep >= opts.stopAfterStep,
      onStep: (step, weights) => {
        lastStep = step;
        stepHashes.push(sha256(weights));
      },
    });
    return { ...outcome, stepHashes };
  } finally {
    if (!opts.pool) await pool.close();
    if (!opts.outDir) await fs.rm(outDir, { recursive: true, force: true });
  }
}

export async function loadFixtureDataset(dir: string): Promise<Cifar10Dataset> {
  return loadCifar10(dir);
}
