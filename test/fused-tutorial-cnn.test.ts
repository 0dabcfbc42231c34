import test from 'ava';
import { randomImageSet } from './fixtures/random-image-set.ts';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';
import { ShardComputer } from '../src/compute/shard-computer.ts';
import { FusedTutorialCnn, FUSED_WASM_URL } from '../src/compute/fused/fused-tutorial-cnn.ts';
import { tutorialCnn } from '../src/model/tutorial-cnn.ts';
import { initialParameters, parameterCount, parameterSlices } from '../src/model/parameter-vector.ts';
import { IMAGE_BYTES, type ImageSet } from '../src/data/cifar10-dataset.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { ThreadPool } from '../src/pool/threads/thread-pool.ts';
import { loadCifar10 } from '../src/data/cifar10-dataset.ts';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { recordRun, settingsFor } from './helpers/training-run.ts';

const model = tutorialCnn;
const P = parameterCount(model);
const slices = parameterSlices(model);

function sliceOf(name: string) {
  const s = slices.find((x) => x.spec.name === name);
  if (!s) throw new Error(name);
  return s;
}

/**
 * Random images, except: image 0 is one constant colour (every pooling window a tie), image 1 repeats each even
 * column in the next one (ties between horizontal neighbours wherever a value depends on one column only).
 */
function imageSet(count: number, seed: number): ImageSet {
  const set = randomImageSet(count, seed);
  set.images.fill(131, 0, IMAGE_BYTES);
  pairColumns(set.images, 1);
  return set;
}

/** Makes column 2k+1 of image i equal to column 2k (all rows, all channels). */
function pairColumns(images: Uint8Array, i: number): void {
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x += 2) {
      for (let c = 0; c < 3; c++) images[i * IMAGE_BYTES + (y * 32 + x + 1) * 3 + c] = images[i * IMAGE_BYTES + (y * 32 + x) * 3 + c];
    }
  }
}

const train = imageSet(96, 1);
const testSet = imageSet(700, 2);
const sets = { train, test: testSet };

/** PyTorch-style random weights, with dead units: conv1 channel 5, conv2 channel 3 and fc1 units 0–29 never fire. */
function weightsWithDeadUnits(seed: number): Float32Array {
  const w = initialParameters(model, seed);
  w[sliceOf('conv1/bias').offset + 5] = -50;
  w[sliceOf('conv2/bias').offset + 3] = -50;
  for (let j = 0; j < 30; j++) w[sliceOf('fc1/bias').offset + j] = -50;
  return w;
}

/** conv1 looks at one pixel only (tap ky = kx = 0): on image 1 horizontal neighbours then tie exactly in pool1. */
function weightsForTies(seed: number): Float32Array {
  const w = initialParameters(model, seed);
  const { offset } = sliceOf('conv1/kernel');
  for (let k = 1; k < 9; k++) for (let j = 0; j < 18; j++) w[offset + k * 18 + j] = 0;
  return w;
}

function bytes(a: Float32Array | Int32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

let cpuComputer: Promise<ShardComputer> | null = null;
function cpu(): Promise<ShardComputer> {
  cpuComputer ??= ShardComputer.create(model, sets, 'cpu');
  return cpuComputer;
}

function compareGradients(t: import('ava').ExecutionContext, got: Float32Array, expected: Float32Array, what: string): void {
  t.is(got.length, P + 2);
  for (const { spec, offset, size } of slices) {
    let diff = 0;
    let scale = 0;
    for (let i = offset; i < offset + size; i++) {
      diff = Math.max(diff, Math.abs(got[i] - expected[i]));
      scale = Math.max(scale, Math.abs(expected[i]));
    }
    t.true(diff <= 3e-5 * scale, `${what} ${spec.name}: max |fused − cpu| ${diff} vs max |grad| ${scale}`);
  }
  t.true(Math.abs(got[P] - expected[P]) <= 2e-6 * Math.abs(expected[P]), `${what} loss ${got[P]} vs ${expected[P]}`);
  t.is(got[P + 1], expected[P + 1], `${what} correct count`);
}

// The cpu backend's tfjs engine is per thread: tests that use it run serially.

for (const n of [1, 5, 64]) {
  test.serial(`gradient, loss and correct count match the tfjs cpu backend: shard of ${n}, with dead units and a constant image`, async (t) => {
    const rng = new SeededRandom(n, 7);
    const indices = Int32Array.from({ length: n }, (_, i) => (i < 2 ? i : rng.nextInt(train.count)));
    const w = weightsWithDeadUnits(100 + n);
    const reference = await cpu();
    reference.setWeights(w);
    const expected = reference.gradient(indices);
    const fused = FusedTutorialCnn.create();
    fused.setWeights(w);
    const got = fused.gradient(train.images, train.labels, train.count, indices);
    compareGradients(t, got, expected, `shard ${n}`);
    // Dead units: exactly zero gradient, as in tfjs (ReLU'(0) = 0).
    const b1 = sliceOf('fc1/bias').offset;
    for (let j = 0; j < 30; j++) t.is(got[b1 + j], 0);
    t.is(got[sliceOf('conv1/bias').offset + 5], 0);
    t.is(got[sliceOf('conv2/bias').offset + 3], 0);
  });
}

test.serial('max-pool ties give the gradient to the first maximum in scan order, as tfjs does', async (t) => {
  const w = weightsForTies(5);
  const reference = await cpu();
  reference.setWeights(w);
  const fused = FusedTutorialCnn.create();
  fused.setWeights(w);
  for (const indices of [Int32Array.of(1), Int32Array.of(0), Int32Array.of(1, 0, 1)]) {
    const expected = reference.gradient(indices);
    const got = fused.gradient(train.images, train.labels, train.count, indices);
    compareGradients(t, got, expected, `images ${indices.join(',')}`);
  }
  // Not vacuous: image 1 sends gradient into every conv1 tap (where the rule decides which column each tap sees).
  // (Checked when written: giving ties to the last maximum instead fails this test.)
  const got = fused.gradient(train.images, train.labels, train.count, Int32Array.of(1));
  const { offset } = sliceOf('conv1/kernel');
  for (let tap = 0; tap < 9; tap++) t.true(got.subarray(offset + tap * 18, offset + tap * 18 + 18).some((v) => v !== 0), `tap ${tap}`);
});

test.serial('evaluate matches the tfjs cpu backend: loss sum and every prediction', async (t) => {
  const w = initialParameters(model, 31);
  const reference = await cpu();
  reference.setWeights(w);
  const fused = FusedTutorialCnn.create();
  fused.setWeights(w);
  for (const [start, end] of [[0, 700], [3, 4], [65, 200]]) {
    const expected = reference.evaluate(start, end);
    const got = fused.evaluate(testSet.images, testSet.labels, testSet.count, start, end);
    t.true(Math.abs(got.lossSum - expected.lossSum) <= 2e-6 * expected.lossSum, `${got.lossSum} vs ${expected.lossSum}`);
    t.deepEqual([...got.predictions], [...expected.predictions]);
  }
});

test('byte-identical results across calls, across interleaved shards and across separate instances', (t) => {
  const w = weightsWithDeadUnits(9);
  const a = FusedTutorialCnn.create();
  const b = FusedTutorialCnn.create();
  a.setWeights(w);
  b.setWeights(w);
  const shard = Int32Array.from([5, 17, 3, 95, 40, 41, 0, 77, 12, 64, 33, 8, 50, 21, 88, 3, 1, 66, 67, 68]);
  const other = Int32Array.from([9, 10, 11]);
  const first = a.gradient(train.images, train.labels, train.count, shard);
  a.gradient(train.images, train.labels, train.count, other);
  a.evaluate(testSet.images, testSet.labels, testSet.count, 0, 100);
  const again = a.gradient(train.images, train.labels, train.count, shard);
  const elsewhere = b.gradient(train.images, train.labels, train.count, shard);
  t.true(bytes(first).equals(bytes(again)));
  t.true(bytes(first).equals(bytes(elsewhere)));
  t.not(first.buffer, again.buffer, 'each call returns a fresh array');
  const e1 = a.evaluate(testSet.images, testSet.labels, testSet.count, 0, 700);
  const e2 = b.evaluate(testSet.images, testSet.labels, testSet.count, 0, 700);
  t.is(e1.lossSum, e2.lossSum);
  t.true(bytes(e1.predictions).equals(bytes(e2.predictions)));
  // New weights are taken in full (nothing of the old ones survives in the module's prepared layouts).
  const w2 = initialParameters(model, 10);
  a.setWeights(w2);
  const c = FusedTutorialCnn.create();
  c.setWeights(w2);
  t.true(bytes(a.gradient(train.images, train.labels, train.count, shard)).equals(bytes(c.gradient(train.images, train.labels, train.count, shard))));
});

test('bad indices and use before setWeights are errors', (t) => {
  const f = FusedTutorialCnn.create();
  t.throws(() => f.gradient(train.images, train.labels, train.count, Int32Array.of(0)), { message: /setWeights/ });
  f.setWeights(initialParameters(model, 1));
  t.throws(() => f.gradient(train.images, train.labels, train.count, Int32Array.of(0, 96)), { instanceOf: RangeError, message: /96/ });
  t.throws(() => f.gradient(train.images, train.labels, train.count, new Int32Array(0)), { instanceOf: RangeError });
  t.throws(() => f.evaluate(testSet.images, testSet.labels, testSet.count, 0, 701), { instanceOf: RangeError });
  t.throws(() => f.setWeights(new Float32Array(P - 1)), { instanceOf: RangeError });
});

test.serial("ShardComputer with backend 'fused' returns the module's results", async (t) => {
  const sc = await ShardComputer.create(model, sets, 'fused');
  t.is(sc.backend, 'fused');
  const w = initialParameters(model, 3);
  sc.setWeights(w);
  const f = FusedTutorialCnn.create();
  f.setWeights(w);
  const shard = Int32Array.from([4, 8, 15, 16, 23, 42]);
  t.true(bytes(sc.gradient(shard)).equals(bytes(f.gradient(train.images, train.labels, train.count, shard))));
  const ev = sc.evaluate(10, 90);
  t.is(ev.start, 10);
  t.is(ev.lossSum, f.evaluate(testSet.images, testSet.labels, testSet.count, 10, 90).lossSum);
  t.throws(() => sc.gradient(Int32Array.of(1000)), { instanceOf: RangeError });
});

test('the committed tutorial-cnn.wasm is what npm run build:wasm builds from the source', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:fused', FUSED_WASM_URL));

test('training on fused: byte-identical weights after every step with 1 and 2 threads; auto picks fused', async (t) => {
  const fixture = await writeCifar10Fixture({ perFile: 9, testCount: 10 });
  t.teardown(fixture.cleanup);
  const dataset = await loadCifar10(fixture.dir);
  const settings = settingsFor(dataset, { batchSize: 10, shards: 3, epochs: 2, backend: 'fused' });
  const one = await recordRun(dataset, settings, { threads: 1 });
  t.is(one.stepHashes.length, 10);
  t.is(new Set(one.stepHashes).size, 10, 'every step changes the weights');
  const two = await recordRun(dataset, settings, { threads: 2 });
  t.deepEqual(two.stepHashes, one.stepHashes);

  const pool = await ThreadPool.create({ model: 'tutorial', parameterCount: P, dataset, threads: 2, backend: 'auto' });
  try {
    // Without tfjs-node (the usual case here) 'auto' means fused for the tutorial model, in every thread.
    t.true(pool.backend === 'fused' || pool.backend === 'node', pool.backend);
  } finally {
    await pool.close();
  }
});
