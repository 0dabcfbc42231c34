import test from 'ava';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/compute/backend.ts';
import { BackendError } from '../src/errors/index.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { CONV2D_BACKPROP_FILTER_WASM_URL } from '../src/compute/kernels/conv2d-backprop-filter-wasm.ts';
import { conv2dAlgorithm } from '../src/compute/kernels/conv2d-algorithm.ts';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';
import { TOLERANCE } from './helpers/conv-reference.ts';

// The tutorial CNN's two convolutions: conv1 3→6 on 32×32, conv2 6→16 on 15×15, both 3×3 valid, stride 1;
// and padded ones as bn-cnn's ('same', and the explicit equivalent).
const CASES: readonly { name: string; x: number[]; dy: number[]; filter: number[]; pad?: 'same' | number[][] }[] = [
  { name: 'conv1', x: [8, 32, 32, 3], dy: [8, 30, 30, 6], filter: [3, 3, 3, 6] },
  { name: 'conv2', x: [8, 15, 15, 6], dy: [8, 13, 13, 16], filter: [3, 3, 6, 16] },
  { name: 'conv2, batch 1', x: [1, 15, 15, 6], dy: [1, 13, 13, 16], filter: [3, 3, 6, 16] },
  { name: "padding 'same'", x: [4, 16, 16, 8], dy: [4, 16, 16, 12], filter: [3, 3, 8, 12], pad: 'same' },
  { name: 'explicit padding', x: [2, 9, 7, 5], dy: [2, 9, 8, 4], filter: [3, 2, 5, 4], pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  // bn-cnn's five convolutions at batch 2.
  { name: 'bn-cnn conv1 3→32', x: [2, 32, 32, 3], dy: [2, 32, 32, 32], filter: [3, 3, 3, 32], pad: 'same' },
  { name: 'bn-cnn conv2 32→32', x: [2, 32, 32, 32], dy: [2, 32, 32, 32], filter: [3, 3, 32, 32], pad: 'same' },
  { name: 'bn-cnn conv3 32→64', x: [2, 16, 16, 32], dy: [2, 16, 16, 64], filter: [3, 3, 32, 64], pad: 'same' },
  { name: 'bn-cnn conv4 64→64', x: [2, 16, 16, 64], dy: [2, 16, 16, 64], filter: [3, 3, 64, 64], pad: 'same' },
  { name: 'bn-cnn conv5 64→128', x: [2, 8, 8, 64], dy: [2, 8, 8, 128], filter: [3, 3, 64, 128], pad: 'same' },
  // Channel counts off the 4 (Cin) × 8 (Cout) tiles: every edge tile (Cout 13 = 8 + 4 + 1, 6 = 4 + 2, 3, 1).
  { name: 'Cin 3, Cout 13', x: [3, 7, 9, 3], dy: [3, 7, 9, 13], filter: [3, 3, 3, 13], pad: 'same' },
  { name: 'Cin 7, Cout 6', x: [2, 10, 6, 7], dy: [2, 8, 4, 6], filter: [3, 3, 7, 6] },
  { name: 'Cin 1, Cout 1', x: [4, 12, 12, 1], dy: [4, 12, 12, 1], filter: [3, 3, 1, 1], pad: 'same' },
  { name: 'Cin 2, Cout 11, 5×5', x: [2, 11, 13, 2], dy: [2, 11, 13, 11], filter: [5, 5, 2, 11], pad: 'same' },
  { name: "even kernel 'same'", x: [2, 6, 6, 9], dy: [2, 6, 6, 5], filter: [2, 2, 9, 5], pad: 'same' },
  { name: 'asymmetric padding', x: [2, 9, 10, 4], dy: [2, 9, 10, 8], filter: [3, 2, 4, 8], pad: [[0, 0], [2, 0], [0, 1], [0, 0]] },
  { name: 'padding larger than the kernel', x: [1, 5, 5, 4], dy: [1, 9, 8, 8], filter: [3, 3, 4, 8], pad: [[0, 0], [3, 3], [2, 3], [0, 0]] },
];

function random(size: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed, 99);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.nextFloat() * 2 - 1;
  return out;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Runs the Conv2DBackpropFilter kernel of the current backend on copies of xv/dyv. */
function backpropFilter(
  xv: Float32Array, dyv: Float32Array, c: (typeof CASES)[number], attrs: Record<string, unknown> = {},
): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d(xv.slice(), c.x as unknown as [number, number, number, number]);
    const dy = tf.tensor4d(dyv.slice(), c.dy as unknown as [number, number, number, number]);
    const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
      strides: 1, pad: c.pad ?? 'valid', dataFormat: 'NHWC', filterShape: [...c.filter], ...attrs,
    }) as tf.Tensor;
    return dw.dataSync().slice() as Float32Array;
  });
}

// Backend switching is global to the thread: run serially.
for (const [k, c] of CASES.entries()) {
  test.serial(`matches the cpu backend and is deterministic: ${c.name}`, async (t) => {
    const xv = random(size(c.x), 2 * k + 1);
    const dyv = random(size(c.dy), 2 * k + 2);

    t.is(await initBackend('cpu'), 'cpu');
    const expected = backpropFilter(xv, dyv, c);

    t.is(await initBackend('wasm'), 'wasm');
    const a = backpropFilter(xv, dyv, c);
    const b = backpropFilter(xv, dyv, c);

    t.is(a.length, size(c.filter));
    let maxRef = 0;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(expected[i]));
      maxDiff = Math.max(maxDiff, Math.abs(a[i] - expected[i]));
    }
    t.true(maxRef > 1, 'the reference is not trivially small');
    // The registered kernel runs Winograd F(4×4) where ../src/compute/kernels/conv2d-algorithm.ts says so: it rounds more.
    const [kh, kw, cin, cout] = c.filter;
    const tol = conv2dAlgorithm(kh, kw, cin, cout, c.dy[1], c.dy[2]) === 'winograd-f4' ? TOLERANCE.f4 : TOLERANCE.direct;
    t.true(maxDiff <= tol * maxRef, `max |wasm − cpu| = ${maxDiff} for max |dW| = ${maxRef}`);
    t.deepEqual(Buffer.from(a.buffer), Buffer.from(b.buffer), 'same inputs give the same bytes');
  });
}

test.serial('frees its intermediates: no tensors or wasm buffers left behind', async (t) => {
  await initBackend('wasm');
  const c = CASES[1];
  const xv = random(size(c.x), 7);
  const dyv = random(size(c.dy), 8);
  backpropFilter(xv, dyv, c); // warm-up
  // tf.memory() counts what the engine knows; the kernel's intermediates live only in the backend.
  const tensorsBefore = tf.memory().numTensors;
  const buffersBefore = tf.backend().numDataIds();
  for (let i = 0; i < 5; i++) backpropFilter(xv, dyv, c);
  t.is(tf.memory().numTensors, tensorsBefore);
  t.is(tf.backend().numDataIds(), buffersBefore);
});

test.serial('is what tf.grads uses for a conv2d filter on wasm', async (t) => {
  await initBackend('wasm');
  const c = CASES[1];
  const xv = random(size(c.x), 9);
  const wv = random(size(c.filter), 10);
  const grad = (): Float32Array => tf.tidy(() => {
    const x = tf.tensor4d(xv, c.x as unknown as [number, number, number, number]);
    const w = tf.tensor4d(wv, c.filter as unknown as [number, number, number, number]);
    const g = tf.grad((f: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, f as tf.Tensor4D, 1, 'valid'))))(w);
    return g.dataSync().slice() as Float32Array;
  });
  const onWasm = grad();
  await initBackend('cpu');
  const onCpu = grad();
  await initBackend('wasm');
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < onCpu.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(onCpu[i]));
    maxDiff = Math.max(maxDiff, Math.abs(onWasm[i] - onCpu[i]));
  }
  t.true(maxDiff <= 1e-5 * maxRef, `max diff ${maxDiff} vs ${maxRef}`);
});

test.serial('rejects attributes it does not implement, naming them', async (t) => {
  await initBackend('wasm');
  const c = CASES[1];
  const xv = random(size(c.x), 11);
  const dyv = random(size(c.dy), 12);
  for (const [attrs, word] of [
    [{ strides: 2 }, 'strides'],
    [{ strides: [1, 2] }, 'strides'],
    [{ pad: 'same' }, 'padding'],
    [{ pad: 1 }, 'padding'],
    [{ dataFormat: 'NCHW' }, 'NCHW'],
    [{ filterShape: [5, 5, 6, 16] }, 'filterShape'],
  ] as const) {
    const before = tf.memory().numTensors;
    const err = t.throws(() => backpropFilter(xv, dyv, c, attrs), { instanceOf: BackendError });
    t.regex(err!.message, new RegExp(word), JSON.stringify(attrs));
    t.is(tf.memory().numTensors, before, 'nothing leaked by the failed call');
  }
});

test.serial('same bytes whatever ran before: memory grown by a larger call and reused', async (t) => {
  await initBackend('wasm');
  const small = CASES.find((c) => c.name === 'Cin 3, Cout 13')!;
  const large = CASES.find((c) => c.name === 'bn-cnn conv2 32→32')!;
  const sx = random(size(small.x), 21);
  const sdy = random(size(small.dy), 22);
  const lx = random(size(large.x), 23);
  const ldy = random(size(large.dy), 24);
  const first = backpropFilter(sx, sdy, small);
  const large1 = backpropFilter(lx, ldy, large);
  const again = backpropFilter(sx, sdy, small);
  const large2 = backpropFilter(lx, ldy, large);
  t.deepEqual(Buffer.from(again.buffer), Buffer.from(first.buffer));
  t.deepEqual(Buffer.from(large2.buffer), Buffer.from(large1.buffer));
});

test('the committed conv2d-backprop-filter.wasm is what npm run build:wasm builds from the source', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:conv-filter', CONV2D_BACKPROP_FILTER_WASM_URL));
