import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { bnCnnModel } from '../src/model/bn-cnn.ts';
import { BN_EPSILON, batchNormReluTraining, type BatchStatistics } from '../src/model/batch-norm.ts';
import { dropoutMask } from '../src/model/dropout-mask.ts';
import type { ForwardContext, ModelDefinition } from '../src/model/model-definition.ts';
import { formatSummary } from '../src/model/model-summary.ts';
import { modelByName } from '../src/model/model-registry.ts';
import {
  initialParameters, isTrainable, parameterCount, parameterSlices, trainableCount,
} from '../src/model/parameter-vector.ts';
import { loadLayersModelWeights, saveLayersModel } from '../src/model/layers-model-files.ts';
import { runningStatisticRanges, updateRunningStatistics } from '../src/train/batch-norm-state.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { initBackend } from '../src/compute/backend.ts';

const model = bnCnnModel;

test.before(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const rng = new SeededRandom(seed, 77);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.nextFloat());
}

function images(n: number, seed: number): tf.Tensor4D {
  return tf.tensor4d(random(n * 32 * 32 * 3, seed, 0, 1), [n, 32, 32, 3]);
}

function tensors(m: ModelDefinition, w: Float32Array): tf.Tensor[] {
  return parameterSlices(m).map(({ spec, offset, size }) => tf.tensor(w.slice(offset, offset + size), [...spec.shape]));
}

/** Weights with non-trivial batch norm parameters and running statistics (the initial ones are 1s and 0s). */
function perturbedWeights(seed: number): Float32Array {
  const w = initialParameters(model, seed);
  const rng = new SeededRandom(seed, 5);
  for (const { spec, offset, size } of parameterSlices(model)) {
    for (let i = offset; i < offset + size; i++) {
      if (spec.name.endsWith('/gamma')) w[i] = 0.5 + rng.nextFloat();
      if (spec.name.endsWith('/beta')) w[i] = rng.nextFloat() * 0.4 - 0.2;
      if (spec.kind === 'running-mean') w[i] = rng.nextFloat() * 0.4 - 0.2;
      if (spec.kind === 'running-variance') w[i] = 0.2 + rng.nextFloat();
    }
  }
  return w;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

test('bn-cnn: the layout, PyTorch initialisation of batch norm, trainable ranges and --summary', (t) => {
  t.is(modelByName('bn-cnn'), model);
  const slices = parameterSlices(model);
  const w = initialParameters(model, 3);
  const stats = slices.filter((s) => !isTrainable(s.spec));
  t.is(stats.length, 10, 'running mean and variance of five batch norms');
  for (const { spec, offset, size } of slices) {
    const values = [...w.subarray(offset, offset + size)];
    if (spec.name.endsWith('/gamma') || spec.kind === 'running-variance') t.true(values.every((v) => v === 1), spec.name);
    else if (spec.name.endsWith('/beta') || spec.kind === 'running-mean') t.true(values.every((v) => v === 0), spec.name);
    else {
      const bound = 1 / Math.sqrt(spec.fanIn);
      t.true(values.every((v) => Math.abs(v) <= bound) && values.some((v) => Math.abs(v) > bound / 2), spec.name);
    }
  }
  const total = parameterCount(model);
  t.is(trainableCount(model) + stats.reduce((n, s) => n + s.size, 0), total);
  const covered = new Uint8Array(total).fill(1);
  for (const [start, end] of runningStatisticRanges(model)) covered.fill(2, start, end);
  for (const { spec, offset, size } of slices) {
    t.true(covered.subarray(offset, offset + size).every((c) => c === (isTrainable(spec) ? 1 : 2)), spec.name);
  }
  t.is(model.summary().reduce((n, r) => n + r.parameters, 0), total);
  const summary = formatSummary(model);
  t.regex(summary, new RegExp(`Total params: ${total.toLocaleString('en-US')}`));
  t.regex(summary, /Non-trainable params: 640\b/); // 2 × (32 + 32 + 64 + 64 + 128)
  t.regex(summary, /conv2 \(Conv2D\)\s+\[-1, 32, 32, 32\]\s+9,216/);
});

/** relu(batchNorm(x)) with batch statistics, written with tfjs's own ops and gradients: the reference. */
function referenceBnRelu(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor4D {
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  return tf.relu(tf.batchNorm(x, mean, variance, beta, gamma, BN_EPSILON)) as tf.Tensor4D;
}

test('batch norm + ReLU in training mode: forward, batch statistics and gradients match tfjs ops', (t) => {
  const shape: [number, number, number, number] = [3, 5, 4, 6];
  const size = 3 * 5 * 4 * 6;
  const xv = random(size, 1, -2, 3);
  const gv = random(6, 2, 0.5, 1.5);
  const bv = random(6, 3, -0.3, 0.3);
  const dyv = random(size, 4);
  const x = tf.tensor4d(xv, shape);
  const gamma = tf.tensor1d(gv);
  const beta = tf.tensor1d(bv);
  const dy = tf.tensor4d(dyv, shape);

  let stats: BatchStatistics | undefined;
  const ours = batchNormReluTraining(x, gamma, beta, BN_EPSILON, (s) => (stats = s));
  const ref = referenceBnRelu(x, gamma, beta);
  t.true(maxAbsDiff(ours.dataSync(), ref.dataSync()) < 1e-5);
  t.true(ours.dataSync().some((v) => v === 0) && ours.dataSync().some((v) => v > 0), 'ReLU clips some, not all');

  // Statistics: the plain mean and the unbiased variance over the 60 values per channel.
  for (let c = 0; c < 6; c++) {
    const values = Array.from({ length: size / 6 }, (_, i) => xv[i * 6 + c]);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const unbiased = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
    t.true(Math.abs(stats!.mean[c] - mean) < 1e-6, `mean ${c}`);
    t.true(Math.abs(stats!.unbiasedVariance[c] - unbiased) < 1e-5 * unbiased, `variance ${c}`);
  }

  const loss = (f: typeof referenceBnRelu) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor1D, c as tf.Tensor1D), dy));
  const oursGrads = tf.grads(loss((a, b, c) => batchNormReluTraining(a, b, c, BN_EPSILON)))([x, gamma, beta]);
  const refGrads = tf.grads(loss(referenceBnRelu))([x, gamma, beta]);
  for (const [k, name] of ['x', 'gamma', 'beta'].entries()) {
    const r = refGrads[k].dataSync();
    const scale = Math.max(...Array.from(r, Math.abs));
    t.true(scale > 0.1, `${name}: the reference gradient is not trivially small`);
    t.true(maxAbsDiff(oursGrads[k].dataSync(), r) < 1e-5 * Math.max(1, scale), `d${name}: ${maxAbsDiff(oursGrads[k].dataSync(), r)}`);
  }
});

test('eval mode uses the running statistics, training mode the batch\'s own: per image vs per batch', (t) => {
  const w = perturbedWeights(11);
  const params = tensors(model, w);
  const x = images(4, 1);
  const evalAll = model.logits(params, x).dataSync();
  const evalFirst = model.logits(params, x.slice(0, 2)).dataSync();
  // Evaluation is per image: an image's logits do not depend on the rest of the batch.
  t.true(maxAbsDiff(evalAll.subarray(0, 20), evalFirst) < 1e-5);

  const training: ForwardContext = { training: true };
  const trainAll = model.logits(params, x, training).dataSync();
  const trainFirst = model.logits(params, x.slice(0, 2), training).dataSync();
  t.true(maxAbsDiff(trainAll.subarray(0, 20), trainFirst) > 1e-3, 'training normalises with the batch: other images matter');
  t.true(maxAbsDiff(trainAll, evalAll) > 1e-3, 'training and evaluation differ');

  // With running statistics set to exactly the batch's (biased) statistics, evaluation equals training.
  const collected = new Map<number, Float32Array>();
  model.logits(params, x, { training: true, batchStatistic: (i, v) => collected.set(i, v.slice()) });
  t.is(collected.size, 10);
  const slices = parameterSlices(model);
  const matched = w.slice();
  const m = [32 * 32, 32 * 32, 16 * 16, 16 * 16, 8 * 8].map((hw) => 4 * hw);
  let layer = 0;
  for (const [i, values] of [...collected.entries()].sort((a, b) => a[0] - b[0])) {
    const { spec, offset } = slices[i];
    // The reported variance is unbiased (÷ (m − 1)); training normalises with the biased one (÷ m).
    const factor = spec.kind === 'running-variance' ? (m[layer] - 1) / m[layer] : 1;
    values.forEach((v, c) => (matched[offset + c] = v * factor));
    if (spec.kind === 'running-variance') layer++;
  }
  const evalMatched = model.logits(tensors(model, matched), x).dataSync();
  t.true(maxAbsDiff(evalMatched, trainAll) < 1e-3, `eval with the batch's statistics ≈ training (${maxAbsDiff(evalMatched, trainAll)})`);
});

test('dropout masks are a function of (seed, step, image) only: not of the batch an image is in', (t) => {
  const features = 2048;
  const a = dropoutMask(1, 7, Int32Array.from([10, 20, 30]), features, 0.25);
  const b = dropoutMask(1, 7, Int32Array.from([30, 5]), features, 0.25);
  t.deepEqual(a.subarray(2 * features, 3 * features), b.subarray(0, features), 'image 30 gets the same mask in either batch');
  t.deepEqual(a, dropoutMask(1, 7, Int32Array.from([10, 20, 30]), features, 0.25), 'repeatable');
  const keep = Math.fround(1 / 0.75);
  t.true(a.every((v) => v === 0 || v === keep), 'inverted dropout: 0 or 1/(1 − p)');
  const dropped = a.filter((v) => v === 0).length / a.length;
  t.true(Math.abs(dropped - 0.25) < 0.02, `dropped fraction ${dropped}`);
  t.notDeepEqual(a.subarray(0, features), a.subarray(features, 2 * features), 'images differ');
  t.notDeepEqual(a, dropoutMask(1, 8, Int32Array.from([10, 20, 30]), features, 0.25), 'steps differ');
  t.notDeepEqual(a, dropoutMask(2, 7, Int32Array.from([10, 20, 30]), features, 0.25), 'seeds differ');
  t.throws(() => dropoutMask(1, 1, Int32Array.from([1]), 4, 1), { instanceOf: RangeError });

  // In the model: training with dropout seeded the same way gives the same logits; another step, others.
  const params = tensors(model, perturbedWeights(3));
  const x = images(2, 2);
  const run = (step: number) => model.logits(params, x, { training: true, dropout: { seed: 1, step, images: Int32Array.from([4, 9]) } }).dataSync();
  t.deepEqual(run(3), run(3));
  t.true(maxAbsDiff(run(3), run(4)) > 1e-4);
  t.true(maxAbsDiff(run(3), model.logits(params, x, { training: true }).dataSync()) > 1e-4, 'dropout changes the logits');
});

test('the gradient in training mode (dropout off) matches finite differences', (t) => {
  const w = perturbedWeights(5);
  const x = images(3, 3);
  const labels = tf.oneHot(tf.tensor1d([1, 7, 4], 'int32'), 10);
  const slices = parameterSlices(model);
  const trainable = slices.flatMap((s, i) => (isTrainable(s.spec) ? [i] : []));
  const context: ForwardContext = { training: true };
  const lossOf = (all: tf.Tensor[]) => tf.neg(tf.sum(tf.mul(labels, tf.logSoftmax(model.logits(all, x, context))))) as tf.Scalar;
  const base = tensors(model, w);
  const grads = tf.grads((...ps: tf.Tensor[]) => {
    const all = base.slice();
    trainable.forEach((slot, k) => (all[slot] = ps[k]));
    return lossOf(all);
  })(trainable.map((slot) => base[slot]));
  const flat = new Float32Array(w.length);
  trainable.forEach((slot, k) => flat.set(grads[k].dataSync(), slices[slot].offset));

  const at = (name: string, i: number) => slices.find((s) => s.spec.name === name)!.offset + i;
  // Not conv1's kernel: it moves every pixel, so any step flips some ReLU/max-pool choices (kinks) and its
  // finite differences do not settle in float32.
  const probes = [
    at('conv2/kernel', 100), at('bn1/gamma', 3), at('bn3/beta', 7), at('conv4/kernel', 500), at('conv5/kernel', 2000),
    at('bn5/gamma', 0), at('fc/kernel', 333), at('fc/bias', 4),
  ];
  const h = 1e-3;
  let checked = 0;
  for (const i of probes) {
    const plus = w.slice();
    const minus = w.slice();
    plus[i] += h;
    minus[i] -= h;
    const numeric = (lossOf(tensors(model, plus)).dataSync()[0] - lossOf(tensors(model, minus)).dataSync()[0]) / (2 * h);
    const analytic = flat[i];
    t.log(`entry ${i}: analytic ${analytic.toFixed(5)}, numeric ${numeric.toFixed(5)}`);
    t.true(Math.abs(numeric - analytic) <= 0.05 * Math.abs(numeric) + 2e-3, `entry ${i}: analytic ${analytic}, numeric ${numeric}`);
    if (Math.abs(numeric) > 0.01) checked++;
  }
  t.true(checked >= 5, `${checked} probes with a gradient clearly away from zero`);
});

test('the coordinator\'s rule: shards of 3 and 2 images give the image-weighted mean, folded in with momentum 0.1', (t) => {
  // Shard results at a statistic's positions hold n × the shard's batch value; the trainer sums them in shard
  // order and divides by the batch size.
  const meanA = Float32Array.from([1, -2, 0.5]);
  const meanB = Float32Array.from([4, 2, -0.5]);
  const summed = Float32Array.from(meanA, (v, c) => (3 * v + 2 * meanB[c]) / 5);
  t.deepEqual([...summed], [2.2, -0.4, 0.1].map(Math.fround));
  const weights = Float32Array.from([9, 9, 1, 1, 1, 9]); // running statistic at [2, 5)
  const batchValue = new Float32Array(6);
  batchValue.set(summed, 2);
  batchValue[0] = 123; // a gradient entry: not touched by the statistics update
  updateRunningStatistics(weights, batchValue, [[2, 5]]);
  t.deepEqual([...weights], [9, 9, 0.9 + 0.1 * 2.2, 0.9 - 0.1 * 0.4, 0.9 + 0.1 * 0.1, 9].map(Math.fround));
});

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bn-cnn-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('tf.loadLayersModel reads the saved bn-cnn and predicts what model.logits computes in eval mode', async (t) => {
  const dir = await tempDir(t);
  const weights = perturbedWeights(7);
  await saveLayersModel(dir, model, weights);
  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  const layers = json.modelTopology.config.layers as { class_name: string; config: Record<string, unknown> }[];
  t.deepEqual([...new Set(layers.map((l) => l.class_name))].sort(),
    ['Activation', 'BatchNormalization', 'Conv2D', 'Dense', 'Dropout', 'Flatten', 'MaxPooling2D']);
  const bn = layers.find((l) => l.class_name === 'BatchNormalization')!.config;
  t.is(bn.epsilon, 1e-5);
  t.is(bn.momentum, 0.9);
  t.is(layers.find((l) => l.class_name === 'Conv2D')!.config.padding, 'same');

  const handler: tf.io.IOHandler = {
    load: async () => {
      const bin = await readFile(path.join(dir, 'weights.bin'));
      return {
        modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, format: json.format,
        weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
      };
    },
  };
  const keras = await tf.loadLayersModel(handler);
  t.teardown(() => keras.dispose());
  const x = images(6, 9);
  const theirs = (keras.predict(x) as tf.Tensor).dataSync();
  const ours = model.logits(tensors(model, weights), x).dataSync();
  t.true(Math.max(...ours) - Math.min(...ours) > 1e-2, 'logits vary');
  t.true(maxAbsDiff(ours, theirs) <= 1e-4, `max |keras − ours| = ${maxAbsDiff(ours, theirs)}`);

  // The running statistics matter: the same weights with the initial statistics predict otherwise.
  const initialStats = weights.slice();
  for (const [start, end] of runningStatisticRanges(model)) initialStats.set(initialParameters(model, 7).subarray(start, end), start);
  t.true(maxAbsDiff(model.logits(tensors(model, initialStats), x).dataSync(), theirs) > 1e-3);

  const loaded = await loadLayersModelWeights(dir);
  t.is(loaded.model, model);
  t.deepEqual(loaded.weights, weights);
});

// Serial: it switches this process's tfjs backend (serial tests run before the others).
test.serial('the training-mode gradient on wasm (padded convolutions, dropout) matches the cpu backend', async (t) => {
  const w = perturbedWeights(13);
  const slices = parameterSlices(model);
  const trainable = slices.flatMap((s, i) => (isTrainable(s.spec) ? [i] : []));
  const xv = random(4 * 32 * 32 * 3, 21, 0, 1);
  const gradient = (): Float32Array => tf.tidy(() => {
    const x = tf.tensor4d(xv, [4, 32, 32, 3]);
    const labels = tf.oneHot(tf.tensor1d([1, 7, 4, 2], 'int32'), 10);
    const base = tensors(model, w);
    const context: ForwardContext = { training: true, dropout: { seed: 1, step: 2, images: Int32Array.from([1, 2, 3, 4]) } };
    const grads = tf.grads((...ps: tf.Tensor[]) => {
      const all = base.slice();
      trainable.forEach((slot, k) => (all[slot] = ps[k]));
      return tf.neg(tf.sum(tf.mul(labels, tf.logSoftmax(model.logits(all, x, context))))) as tf.Scalar;
    })(trainable.map((slot) => base[slot]));
    const flat = new Float32Array(w.length);
    trainable.forEach((slot, k) => flat.set(grads[k].dataSync(), slices[slot].offset));
    return flat;
  });
  const onCpu = gradient();
  t.is(await initBackend('wasm'), 'wasm');
  try {
    const onWasm = gradient();
    const scale = onCpu.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    t.true(scale > 0.5);
    t.true(maxAbsDiff(onWasm, onCpu) <= 1e-5 * scale, `max |wasm − cpu| = ${maxAbsDiff(onWasm, onCpu)} for max |g| = ${scale}`);
  } finally {
    await tf.setBackend('cpu');
  }
});
