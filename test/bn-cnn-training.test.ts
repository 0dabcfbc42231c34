import test from 'ava';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { IMAGE_BYTES, type ImageSet } from '../src/data/cifar10-dataset.ts';
import { readCheckpoint } from '../src/checkpoint/checkpoint.ts';
import { initBackend } from '../src/compute/backend.ts';
import { bnCnnModel as model } from '../src/model/bn-cnn.ts';
import { initialParameters, parameterSlices } from '../src/model/parameter-vector.ts';
import { cutIntoShards, epochPermutation } from '../src/train/batch-plan.ts';
import { runningStatisticRanges } from '../src/train/batch-norm-state.ts';
import { recordRun, settingsFor, sha256 } from './helpers/training-run.ts';

// bn-cnn trained through the real trainer and worker threads on the wasm backend: batch norm in training
// mode per shard, seeded dropout and augmentation, running statistics combined by the coordinator.

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1e-3, Math.abs(b[i])));
  return worst;
}

test('bn-cnn: weights and running statistics after every step are byte-identical with 1, 2 and 3 worker threads', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 4, testCount: 10 }); // 20 images: steps of 8, 8, 4
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { model: 'bn-cnn', batchSize: 8, shards: 3, epochs: 1, augmentation: 'crop-flip' });

  const reference = await recordRun(dataset, settings, { threads: 1 });
  t.is(reference.stepHashes.length, 3);
  t.is(new Set(reference.stepHashes).size, 3, 'every step changes the weights');
  const initial = initialParameters(model, settings.seed);
  for (const [start, end] of runningStatisticRanges(model)) {
    t.notDeepEqual(reference.weights.subarray(start, end), initial.subarray(start, end), `running statistics [${start}, ${end}) moved`);
  }
  for (const threads of [2, 3]) {
    const run = await recordRun(dataset, settings, { threads });
    t.deepEqual(run.stepHashes, reference.stepHashes, `${threads} threads`);
  }
});

/** A shard's batch statistics (mean, unbiased variance per running-statistic entry), straight from the model. */
function shardStatistics(set: ImageSet, indices: Int32Array, weights: Float32Array): Map<number, Float32Array> {
  const stats = new Map<number, Float32Array>();
  tf.tidy(() => {
    const params = parameterSlices(model).map(({ spec, offset, size }) => tf.tensor(weights.slice(offset, offset + size), [...spec.shape]));
    const x = new Float32Array(indices.length * IMAGE_BYTES);
    indices.forEach((j, k) => {
      for (let p = 0; p < IMAGE_BYTES; p++) x[k * IMAGE_BYTES + p] = Math.fround(set.images[j * IMAGE_BYTES + p] / 255);
    });
    model.logits(params, tf.tensor4d(x, [indices.length, 32, 32, 3]), { training: true, batchStatistic: (i, v) => stats.set(i, v.slice()) });
  });
  return stats;
}

test('bn-cnn: one step with shards of 3 and 2 images folds the image-weighted mean of their batch statistics into the running ones', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 1, testCount: 10 }); // 5 images: one step
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { model: 'bn-cnn', batchSize: 5, shards: 2, epochs: 1 });
  const run = await recordRun(dataset, settings, { threads: 2 });
  t.is(run.stepHashes.length, 1);

  await initBackend('wasm');
  const initial = initialParameters(model, settings.seed);
  const [a, b] = cutIntoShards(epochPermutation(settings.seed, 1, 5), 2);
  t.deepEqual([a.length, b.length], [3, 2]);
  const statsA = shardStatistics(dataset.train, a, initial);
  const statsB = shardStatistics(dataset.train, b, initial);
  const statsWhole = shardStatistics(dataset.train, Int32Array.from([...a, ...b]), initial);
  const slices = parameterSlices(model);
  let worst = 0;
  let worstWhole = 0;
  for (const [i, sa] of statsA) {
    const { offset, size } = slices[i];
    const got = run.weights.subarray(offset, offset + size);
    const sb = statsB.get(i)!;
    const expected = Float32Array.from(sa, (v, c) => 0.9 * initial[offset + c] + (0.1 * (3 * v + 2 * sb[c])) / 5);
    const wholeBatch = Float32Array.from(statsWhole.get(i)!, (v, c) => 0.9 * initial[offset + c] + 0.1 * v);
    worst = Math.max(worst, maxRelDiff(got, expected));
    worstWhole = Math.max(worstWhole, maxRelDiff(got, wholeBatch));
  }
  t.is(statsA.size, 10);
  t.true(worst < 1e-5, `running statistics vs 0.9·initial + 0.1·(3·shard A + 2·shard B)/5: max relative difference ${worst}`);
  // The rule is per shard (as DDP without SyncBatchNorm), not the statistics of the whole batch at once.
  t.true(worstWhole > 100 * Math.max(worst, 1e-7), `whole-batch statistics would differ by ${worstWhole}`);
});

test('bn-cnn: a run stopped mid-epoch and resumed ends byte-identical to an uninterrupted run', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 4, testCount: 10 }); // 20 images: 3 steps per epoch
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { model: 'bn-cnn', batchSize: 8, shards: 2, epochs: 2, augmentation: 'crop-flip' });
  const straight = await recordRun(dataset, settings, { threads: 2 });

  const outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'bn-resume-'));
  t.teardown(() => fs.rm(outDir, { recursive: true, force: true }));
  const first = await recordRun(dataset, settings, { threads: 2, outDir, stopAfterStep: 2 });
  t.true(first.stopped);
  const checkpoint = await readCheckpoint(outDir);
  t.is(checkpoint.progress.globalStep, 2);
  const second = await recordRun(dataset, settings, { threads: 1, outDir, resumeFrom: checkpoint });
  t.deepEqual([...first.stepHashes, ...second.stepHashes], straight.stepHashes);
  t.is(sha256(second.weights), sha256(straight.weights));
});
