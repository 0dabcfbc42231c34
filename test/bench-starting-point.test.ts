// Where the benchmark's training points start (bench/starting-point.ts): fresh weights, or a run's checkpoint —
// real checkpoint files written by the trainer's own writer, and the ways a --checkpoint folder can be wrong.
import test from 'ava';
import { TUTORIAL_RECIPE } from '../src/train/run-settings.ts';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkpointPath, writeCheckpoint } from '../src/checkpoint/checkpoint.ts';
import { modelByName } from '../src/model/model-registry.ts';
import { initialParameters, parameterCount } from '../src/model/parameter-vector.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { portableNumerics } from '../src/compute/numerics-identity.ts';
import type { RunSettings } from '../src/train/run-settings.ts';
import { BenchError } from '../bench/bench-error.ts';
import { checkpointStart, freshStart } from '../bench/starting-point.ts';

const tutorial = modelByName('tutorial');

function floats(n: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed, 7);
  return Float32Array.from({ length: n }, () => rng.nextFloat() - 0.5);
}

function settings(model: string, count: number): RunSettings {
  return {
    model, parameterCount: count, seed: 1, batchSize: 10, shards: 2, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, epochs: 10,
    ...TUTORIAL_RECIPE, trainCount: 50_000, testCount: 10_000,
    dataFingerprint: 'a'.repeat(64), backend: 'fused', numerics: portableNumerics('fused'),
  };
}

async function runFolder(t: { teardown(fn: () => Promise<void>): void }, model: string): Promise<{ dir: string; weights: Float32Array }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-start-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const count = parameterCount(modelByName(model));
  const weights = floats(count, 1);
  await writeCheckpoint(dir, {
    settings: settings(model, count),
    progress: { epochsDone: 3, stepInEpoch: 0, globalStep: 15_000, epochLossSum: 0, epochCorrect: 0, epochSeen: 0, elapsedSeconds: 0 },
    weights, adam: { m: floats(count, 2), v: floats(count, 3).map(Math.abs), step: 15_000 },
    history: [1, 2, 3].map((epoch) => ({ epoch, loss: 1, acc: 0.5, time: 1, imagesPerSecond: 1, globalStep: epoch * 5000, workers: 'test', timestamp: '' })),
  });
  return { dir, weights };
}

test('fresh weights by default: the seed\'s initial parameters and a new Adam state', (t) => {
  const start = freshStart(tutorial, 1);
  t.deepEqual(start.weights, initialParameters(tutorial, 1));
  t.is(start.adam.step, 0);
  t.true(start.adam.m.every((x) => x === 0));
  t.is(start.description, 'fresh weights (seed 1)');
});

test('--checkpoint: a tutorial run\'s weights and Adam state, described with its progress', async (t) => {
  const { dir, weights } = await runFolder(t, 'tutorial');
  const start = await checkpointStart(dir, tutorial);
  t.deepEqual(start.weights, weights);
  t.is(start.adam.step, 15_000);
  t.deepEqual(start.adam.m, floats(weights.length, 2));
  t.is(start.description, `the checkpoint in ${dir} (after 3 epochs, 15000 steps)`);
});

test('--checkpoint: another model, no checkpoint, or a damaged one is a BenchError that says which', async (t) => {
  const bn = await runFolder(t, 'bn-cnn');
  await t.throwsAsync(checkpointStart(bn.dir, tutorial), { instanceOf: BenchError, message: /is a run of the bn-cnn model .* trains the tutorial model/ });

  const empty = await mkdtemp(path.join(os.tmpdir(), 'bench-start-'));
  t.teardown(() => rm(empty, { recursive: true, force: true }));
  await t.throwsAsync(checkpointStart(empty, tutorial), { instanceOf: BenchError, message: new RegExp(`no ${checkpointPath(empty).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`) });

  const damaged = await runFolder(t, 'tutorial');
  await truncate(checkpointPath(damaged.dir), 1000);
  const error = await t.throwsAsync(checkpointStart(damaged.dir, tutorial), { instanceOf: BenchError, message: /^--checkpoint: / });
  t.notRegex(error!.message, /--resume/, 'the trainer\'s advice about --resume is left out');
});
