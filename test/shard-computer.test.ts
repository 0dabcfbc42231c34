import test from 'ava';
import { randomImageSet } from './fixtures/random-image-set.ts';
import * as tf from '@tensorflow/tfjs-core';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { TFJS_EVAL_CHUNK as EVAL_CHUNK } from '../src/compute/engines/tfjs-engine.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import { initialParameters, parameterCount, parameterSlices } from '../src/model/parameter-vector.ts';
import { IMAGE_BYTES, type ImageSet } from '../src/data/cifar10-dataset.ts';
import { DatasetError } from '../src/errors/index.ts';

const model = tutorialCnn;
const P = parameterCount(model);

const imageSet = (count: number, seed: number) => randomImageSet(count, seed);

const sets = { train: imageSet(96, 1), test: imageSet(EVAL_CHUNK + 137, 2) };
const weights = initialParameters(model, 1234);
const shard = Int32Array.from([5, 17, 3, 95, 40, 41, 0, 77, 12, 64, 33, 8, 50, 21, 88, 3]); // repeats allowed

/** Logits of images `indices` computed directly with the model (not through ShardComputer), as float64. */
function referenceLogits(set: ImageSet, indices: Int32Array, w: Float32Array): Float64Array {
  const values = tf.tidy(() => {
    const params = parameterSlices(model).map(({ spec, offset, size }) =>
      tf.tensor(w.slice(offset, offset + size), spec.shape as number[]));
    const x = new Float32Array(indices.length * IMAGE_BYTES);
    indices.forEach((j, i) => {
      for (let k = 0; k < IMAGE_BYTES; k++) x[i * IMAGE_BYTES + k] = set.images[j * IMAGE_BYTES + k] / 255;
    });
    return model.logits(params, tf.tensor4d(x, [indices.length, 32, 32, 3]));
  });
  const out = Float64Array.from(values.dataSync());
  values.dispose();
  return out;
}

function crossEntropy(logits: Float64Array, row: number, label: number): number {
  const z = logits.subarray(row * 10, row * 10 + 10);
  const m = Math.max(...z);
  let s = 0;
  for (const v of z) s += Math.exp(v - m);
  return Math.log(s) + m - z[label];
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function bytes(a: Float32Array | Int32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

// One tfjs engine per test file (thread) and the backend is global to it: run serially.

test.serial('wasm gradient matches the cpu backend, tensor by tensor', async (t) => {
  const cpu = await ShardComputer.create(model, sets, 'cpu');
  t.is(cpu.backend, 'cpu');
  cpu.setWeights(weights);
  const expected = cpu.gradient(shard);
  cpu.dispose();

  const wasm = await ShardComputer.create(model, sets, 'wasm');
  t.is(wasm.backend, 'wasm');
  t.is(wasm.parameterCount, P);
  wasm.setWeights(weights);
  const got = wasm.gradient(shard);
  wasm.dispose();

  t.is(got.length, P + 2);
  for (const { spec, offset, size } of parameterSlices(model)) {
    const e = expected.subarray(offset, offset + size);
    const g = got.subarray(offset, offset + size);
    const scale = maxAbs(e);
    let diff = 0;
    for (let i = 0; i < size; i++) diff = Math.max(diff, Math.abs(g[i] - e[i]));
    t.true(scale > 0, `${spec.name} has a non-zero gradient`);
    t.log(`${spec.name}: max relative difference ${(diff / scale).toExponential(2)}`);
    t.true(diff <= 2e-5 * scale, `${spec.name}: max |wasm − cpu| ${diff} vs max |grad| ${scale}`);
  }
  t.true(Math.abs(got[P] - expected[P]) <= 1e-5 * expected[P], `loss ${got[P]} vs ${expected[P]}`);
  t.is(got[P + 1], expected[P + 1]);
});

test.serial('gradient agrees with central finite differences of the returned loss', async (t) => {
  const sc = await ShardComputer.create(model, sets, 'wasm');
  sc.setWeights(weights);
  // Two images: few ReLU/max-pool switches within ±h, and a loss small enough for float32 differences.
  const pair = Int32Array.from([7, 60]);
  const g = sc.gradient(pair);
  const w = weights.slice();
  const h = 2e-3;
  // Per tensor, the largest-gradient entry, where float32 finite differences are most trustworthy.
  for (const { spec, offset, size } of parameterSlices(model)) {
    let k = offset;
    for (let i = offset; i < offset + size; i++) if (Math.abs(g[i]) > Math.abs(g[k])) k = i;
    w[k] = weights[k] + h;
    sc.setWeights(w);
    const up = sc.gradient(pair)[P];
    w[k] = weights[k] - h;
    sc.setWeights(w);
    const down = sc.gradient(pair)[P];
    w[k] = weights[k];
    const fd = (up - down) / (2 * h);
    t.log(`${spec.name}[${k - offset}]: analytic ${g[k].toExponential(4)}, finite difference ${fd.toExponential(4)}`);
    t.true(Math.abs(fd - g[k]) <= 2e-2 * Math.abs(g[k]) + 5e-4, `${spec.name}[${k - offset}]: ${g[k]} vs ${fd}`);
  }
  sc.dispose();
});

test.serial('loss sum and correct count are those of the logits', async (t) => {
  const sc = await ShardComputer.create(model, sets, 'wasm');
  sc.setWeights(weights);
  const g = sc.gradient(shard);
  const logits = referenceLogits(sets.train, shard, weights);
  let ce = 0;
  let correct = 0;
  shard.forEach((j, i) => {
    const label = sets.train.labels[j];
    ce += crossEntropy(logits, i, label);
    const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
    if (row.indexOf(Math.max(...row)) === label) correct++;
  });
  t.true(Math.abs(g[P] - ce) <= 1e-5 * ce, `lossSum ${g[P]} vs Σ CE ${ce}`);
  t.is(g[P + 1], correct);
  sc.dispose();
});

test.serial('same weights and indices give byte-identical results', async (t) => {
  const sc = await ShardComputer.create(model, sets, 'wasm');
  sc.setWeights(weights);
  const a = sc.gradient(shard);
  const other = sc.gradient(Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 96));
  sc.setWeights(initialParameters(model, 99));
  sc.gradient(shard);
  sc.setWeights(weights);
  const b = sc.gradient(shard);
  t.not(a, b, 'a fresh array every call');
  t.notDeepEqual(bytes(a), bytes(other));
  t.deepEqual(bytes(a), bytes(b));
  sc.dispose();
});

test.serial('gradient into a given array writes every position: a reused array holds exactly the fresh result', async (t) => {
  for (const backend of ['cpu', 'wasm', 'fused'] as const) {
    const sc = await ShardComputer.create(model, sets, backend);
    sc.setWeights(weights);
    const fresh = sc.gradient(shard, 3);
    const out = new Float32Array(new SharedArrayBuffer((P + 2) * 4)).fill(Number.NaN);
    t.is(sc.gradient(shard, 3, out), out, `${backend}: returns the array it was given`);
    t.deepEqual(bytes(out), bytes(fresh), `${backend}: every NaN overwritten with the fresh result`);
    sc.gradient(shard.subarray(0, 5), 4, out);
    t.deepEqual(bytes(out), bytes(sc.gradient(shard.subarray(0, 5), 4)), `${backend}: nothing of the previous result left`);
    t.throws(() => sc.gradient(shard, 3, new Float32Array(P)), { instanceOf: RangeError, message: /holds 81302/ });
    sc.dispose();
  }
});

test.serial('setWeights copies: changing the caller\'s array afterwards changes nothing', async (t) => {
  for (const backend of ['cpu', 'wasm'] as const) {
    const sc = await ShardComputer.create(model, sets, backend);
    const w = weights.slice();
    sc.setWeights(w);
    const few = shard.subarray(0, 3);
    const a = sc.gradient(few);
    w.fill(0.5);
    const b = sc.gradient(few);
    t.deepEqual(bytes(a), bytes(b), backend);
    sc.dispose();
  }
});

test.serial('no tensors or wasm buffers accumulate over 50 steps', async (t) => {
  const sc = await ShardComputer.create(model, sets, 'wasm');
  sc.setWeights(weights);
  sc.gradient(shard);
  sc.evaluate(0, 10);
  const tensors = tf.memory().numTensors;
  const buffers = tf.backend().numDataIds();
  const w = weights.slice();
  for (let step = 0; step < 50; step++) {
    w[step] += 1e-3;
    sc.setWeights(w);
    sc.gradient(Int32Array.from({ length: 8 + (step % 5) }, (_, i) => (step + i * 11) % 96));
  }
  sc.evaluate(0, 10);
  t.is(tf.memory().numTensors, tensors);
  t.is(tf.backend().numDataIds(), buffers);
  sc.dispose();
  t.is(tf.memory().numTensors, tensors - parameterSlices(model).length, 'dispose() frees the weights');
});

test.serial('evaluate: argmax predictions and Σ CE over a range spanning two chunks', async (t) => {
  const sc = await ShardComputer.create(model, sets, 'wasm');
  sc.setWeights(weights);
  const start = 3;
  const end = sets.test.count;
  t.true(end - start > EVAL_CHUNK);
  const r = sc.evaluate(start, end);
  t.is(r.start, start);
  t.is(r.predictions.length, end - start);

  const indices = Int32Array.from({ length: end - start }, (_, i) => start + i);
  const logits = referenceLogits(sets.test, indices, weights);
  const argmax = tf.tidy(() => tf.argMax(tf.tensor2d(Float32Array.from(logits), [indices.length, 10]), 1).dataSync());
  t.deepEqual(Array.from(r.predictions), Array.from(argmax));
  let ce = 0;
  indices.forEach((j, i) => (ce += crossEntropy(logits, i, sets.test.labels[j])));
  t.true(Math.abs(r.lossSum - ce) <= 1e-5 * ce, `${r.lossSum} vs ${ce}`);

  const first = sc.evaluate(start, 200);
  const rest = sc.evaluate(200, end);
  t.deepEqual([...first.predictions, ...rest.predictions], Array.from(r.predictions));
  t.deepEqual(sc.evaluate(5, 5).predictions, new Int32Array(0));
  sc.dispose();
});

test.serial('misuse fails with clear errors', async (t) => {
  const sc = await ShardComputer.create(model, sets, 'wasm');
  t.throws(() => sc.gradient(shard), { message: /setWeights/ });
  t.throws(() => sc.setWeights(new Float32Array(P - 1)), { instanceOf: RangeError, message: new RegExp(String(P)) });
  sc.setWeights(weights);
  t.throws(() => sc.gradient(Int32Array.from([0, 96])), { instanceOf: RangeError, message: /96/ });
  t.throws(() => sc.gradient(Int32Array.from([-1])), { instanceOf: RangeError });
  t.throws(() => sc.gradient(new Int32Array(0)), { instanceOf: RangeError });
  t.throws(() => sc.evaluate(0, sets.test.count + 1), { instanceOf: RangeError });
  sc.dispose();
  t.throws(() => sc.gradient(shard), { message: /dispose/ });

  const short = { count: 4, images: new Uint8Array(3 * IMAGE_BYTES), labels: new Uint8Array(4) };
  await t.throwsAsync(ShardComputer.create(model, { train: short, test: sets.test }, 'wasm'), { instanceOf: DatasetError });
  const badLabel = imageSet(2, 3);
  badLabel.labels[1] = 10;
  await t.throwsAsync(ShardComputer.create(model, { train: sets.train, test: badLabel }, 'wasm'), { instanceOf: DatasetError, message: /label/ });
});
