import test from 'ava';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/compute/backend.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { CONV2D_WASM_URL, conv2dBackpropInputWasm, conv2dWasm } from '../src/compute/kernels/conv2d-wasm.ts';
import { conv2dAlgorithm } from '../src/compute/kernels/conv2d-algorithm.ts';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';
import { TOLERANCE } from './helpers/conv-reference.ts';

type Pad = 'valid' | 'same' | number | number[][];
interface Case { name: string; x: number[]; filter: number[]; pad: Pad }

const CASES: readonly Case[] = [
  // The tutorial CNN's two convolutions (3×3 valid).
  { name: 'tutorial conv1 3→6', x: [8, 32, 32, 3], filter: [3, 3, 3, 6], pad: 'valid' },
  { name: 'tutorial conv2 6→16', x: [8, 15, 15, 6], filter: [3, 3, 6, 16], pad: 'valid' },
  // bn-cnn's five convolutions at batch 2.
  { name: 'bn-cnn conv1 3→32', x: [2, 32, 32, 3], filter: [3, 3, 3, 32], pad: 'same' },
  { name: 'bn-cnn conv2 32→32', x: [2, 32, 32, 32], filter: [3, 3, 32, 32], pad: 'same' },
  { name: 'bn-cnn conv3 32→64', x: [2, 16, 16, 32], filter: [3, 3, 32, 64], pad: 'same' },
  { name: 'bn-cnn conv4 64→64', x: [2, 16, 16, 64], filter: [3, 3, 64, 64], pad: 'same' },
  { name: 'bn-cnn conv5 64→128', x: [2, 8, 8, 64], filter: [3, 3, 64, 128], pad: 'same' },
  // Channel counts off the 8-channel panels (13 = 8 + 5, 6, 3, 1 and 12 = 8 + 4), pixel counts off the 4-pixel tiles.
  { name: 'Cin 3, Cout 13', x: [3, 7, 9, 3], filter: [3, 3, 3, 13], pad: 'same' },
  { name: 'Cin 7, Cout 6', x: [2, 10, 6, 7], filter: [3, 3, 7, 6], pad: 'valid' },
  { name: 'Cin 1, Cout 1', x: [1, 5, 3, 1], filter: [3, 3, 1, 1], pad: 'same' },
  { name: 'Cin 13, Cout 12, batch 1, 5 pixels', x: [1, 1, 5, 13], filter: [1, 1, 13, 12], pad: 'valid' },
  { name: 'Cin 2, Cout 11, 5×5', x: [2, 11, 13, 2], filter: [5, 5, 2, 11], pad: 'same' },
  { name: 'Cin 9, Cout 3, 1×1', x: [2, 5, 7, 9], filter: [1, 1, 9, 3], pad: 'valid' },
  { name: "even kernel 'same'", x: [2, 6, 6, 9], filter: [2, 2, 9, 5], pad: 'same' },
  { name: 'numeric padding 2', x: [2, 6, 7, 4], filter: [3, 3, 4, 9], pad: 2 },
  { name: 'explicit padding', x: [2, 9, 7, 5], filter: [3, 2, 5, 4], pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  { name: 'asymmetric padding', x: [2, 9, 10, 4], filter: [3, 2, 4, 8], pad: [[0, 0], [2, 0], [0, 1], [0, 0]] },
  { name: 'padding larger than the kernel', x: [1, 5, 5, 4], filter: [3, 3, 4, 8], pad: [[0, 0], [3, 3], [2, 3], [0, 0]] },
];

function random(size: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed, 77);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.nextFloat() * 2 - 1;
  return out;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const as4 = (s: readonly number[]) => s as unknown as [number, number, number, number];

function outShape(c: Case, strides = 1): number[] {
  return tf.backend_util.computeConv2DInfo(as4(c.x), as4(c.filter), strides, 1, c.pad as 'valid').outShape;
}

/** The current backend's Conv2D of xv with wv. */
function forward(xv: Float32Array, wv: Float32Array, c: Case, strides = 1): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d(xv.slice(), as4(c.x));
    const filter = tf.tensor4d(wv.slice(), as4(c.filter));
    const y = tf.engine().runKernel('Conv2D', { x, filter }, { strides, pad: c.pad, dataFormat: 'NHWC', dilations: 1 } as never) as tf.Tensor;
    return y.dataSync().slice() as Float32Array;
  });
}

/** The current backend's Conv2DBackpropInput of dyv (shaped like the forward output) with wv. */
function backpropInput(dyv: Float32Array, wv: Float32Array, c: Case, strides = 1): Float32Array {
  return tf.tidy(() => {
    const dy = tf.tensor4d(dyv.slice(), as4(outShape(c, strides)));
    const filter = tf.tensor4d(wv.slice(), as4(c.filter));
    const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, { strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x } as never) as tf.Tensor;
    return dx.dataSync().slice() as Float32Array;
  });
}

/** The tolerance for what the registered kernel runs on this correlation (Winograd F(4×4) rounds more). */
function tolerance(kh: number, kw: number, cin: number, cout: number, oh: number, ow: number): number {
  return conv2dAlgorithm(kh, kw, cin, cout, oh, ow) === 'winograd-f4' ? TOLERANCE.f4 : TOLERANCE.direct;
}

function assertClose(t: import('ava').ExecutionContext, actual: Float32Array, expected: Float32Array, what: string, tol: number = TOLERANCE.direct): void {
  t.is(actual.length, expected.length, what);
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
  }
  t.true(maxRef > 0.5, `${what}: the reference is not trivially small (${maxRef})`);
  t.true(maxDiff <= tol * maxRef, `${what}: max |wasm − cpu| = ${maxDiff} for max |ref| = ${maxRef}`);
}

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

// Backend switching is global to the thread: run serially.
for (const [k, c] of CASES.entries()) {
  test.serial(`Conv2D and Conv2DBackpropInput match the cpu backend, deterministically: ${c.name}`, async (t) => {
    const xv = random(size(c.x), 3 * k + 1);
    const wv = random(size(c.filter), 3 * k + 2);
    const dyv = random(size(outShape(c)), 3 * k + 3);

    t.is(await initBackend('cpu'), 'cpu');
    const y = forward(xv, wv, c);
    const dx = backpropInput(dyv, wv, c);

    t.is(await initBackend('wasm'), 'wasm');
    const y1 = forward(xv, wv, c);
    const y2 = forward(xv, wv, c);
    const dx1 = backpropInput(dyv, wv, c);
    const dx2 = backpropInput(dyv, wv, c);
    const [kh, kw, cin, cout] = c.filter;
    const [, oh, ow] = outShape(c);
    assertClose(t, y1, y, 'Conv2D', tolerance(kh, kw, cin, cout, oh, ow));
    assertClose(t, dx1, dx, 'Conv2DBackpropInput', tolerance(kh, kw, cout, cin, c.x[1], c.x[2]));
    t.true(same(y1, y2), 'Conv2D: same inputs give the same bytes');
    t.true(same(dx1, dx2), 'Conv2DBackpropInput: same inputs give the same bytes');
  });
}

test.serial('both are what the wasm backend runs for stride-1 convolutions; stride 2 and NCHW go to the stock kernels', async (t) => {
  await initBackend('wasm');
  const backend = tf.backend();
  const c = CASES[1];
  const x = tf.tensor4d(random(size(c.x), 40), as4(c.x));
  const filter = tf.tensor4d(random(size(c.filter), 41), as4(c.filter));
  const dy = tf.tensor4d(random(size(outShape(c)), 42), as4(outShape(c)));
  try {
    const ours = conv2dWasm({ inputs: { x, filter }, backend, attrs: { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: 1 } });
    t.truthy(ours);
    backend.disposeData(ours!.dataId);
    const oursDx = conv2dBackpropInputWasm({ inputs: { dy, filter }, backend, attrs: { strides: 1, pad: 'valid', dataFormat: 'NHWC', inputShape: c.x } });
    t.truthy(oursDx);
    backend.disposeData(oursDx!.dataId);
    for (const attrs of [{ strides: 2 }, { strides: [1, 2] }, { dilations: 2 }, { dataFormat: 'NCHW' }, { pad: [[1, 0], [0, 0], [0, 0], [0, 0]] }]) {
      const all = { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: 1, ...attrs };
      t.is(conv2dWasm({ inputs: { x, filter }, backend, attrs: all as never }), null, `Conv2D ${JSON.stringify(attrs)}`);
      if (!('dilations' in attrs)) {
        t.is(conv2dBackpropInputWasm({ inputs: { dy, filter }, backend, attrs: { ...all, inputShape: c.x } as never }), null, `Conv2DBackpropInput ${JSON.stringify(attrs)}`);
      }
    }
    t.is(conv2dWasm({ inputs: { x: tf.cast(x, 'int32'), filter }, backend, attrs: { strides: 1, pad: 'valid' } }), null, 'int32');
  } finally {
    tf.dispose([x, filter, dy]);
  }

  // Stride 2 through the registered kernels: the stock ones, still right.
  const s: Case = { name: 'stride 2', x: [2, 15, 15, 5], filter: [3, 3, 5, 4], pad: 'valid' };
  const xv = random(size(s.x), 43);
  const wv = random(size(s.filter), 44);
  const dyv = random(size(outShape(s, 2)), 45);
  await initBackend('cpu');
  const y = forward(xv, wv, s, 2);
  const dx = backpropInput(dyv, wv, s, 2);
  await initBackend('wasm');
  assertClose(t, forward(xv, wv, s, 2), y, 'Conv2D stride 2');
  assertClose(t, backpropInput(dyv, wv, s, 2), dx, 'Conv2DBackpropInput stride 2');
});

test.serial('frees its intermediates: no tensors or wasm buffers left behind', async (t) => {
  await initBackend('wasm');
  const c = CASES[3];
  const xv = random(size(c.x), 7);
  const wv = random(size(c.filter), 8);
  const dyv = random(size(outShape(c)), 9);
  forward(xv, wv, c); // warm-up
  backpropInput(dyv, wv, c);
  const tensorsBefore = tf.memory().numTensors;
  const buffersBefore = tf.backend().numDataIds();
  for (let i = 0; i < 3; i++) {
    forward(xv, wv, c);
    backpropInput(dyv, wv, c);
  }
  t.is(tf.memory().numTensors, tensorsBefore);
  t.is(tf.backend().numDataIds(), buffersBefore);
});

test.serial('same bytes whatever ran before: memory grown by a larger call and reused', async (t) => {
  await initBackend('wasm');
  const small = CASES.find((c) => c.name === 'Cin 3, Cout 13')!;
  const large = CASES.find((c) => c.name === 'bn-cnn conv2 32→32')!;
  const sx = random(size(small.x), 21);
  const sw = random(size(small.filter), 22);
  const lx = random(size(large.x), 23);
  const lw = random(size(large.filter), 24);
  const sdy = random(size(outShape(small)), 25);
  const ldy = random(size(outShape(large)), 26);
  const first = [forward(sx, sw, small), backpropInput(sdy, sw, small)];
  const large1 = [forward(lx, lw, large), backpropInput(ldy, lw, large)];
  const again = [forward(sx, sw, small), backpropInput(sdy, sw, small)];
  const large2 = [forward(lx, lw, large), backpropInput(ldy, lw, large)];
  for (let i = 0; i < 2; i++) {
    t.true(same(again[i], first[i]));
    t.true(same(large2[i], large1[i]));
  }
});

test.serial('tf.grads of a padded conv2d on wasm match the cpu backend', async (t) => {
  const c = CASES.find((k) => k.name === 'Cin 3, Cout 13')!;
  const xv = random(size(c.x), 31);
  const wv = random(size(c.filter), 32);
  const grads = (): Float32Array[] => tf.tidy(() => {
    const x = tf.tensor4d(xv, as4(c.x));
    const w = tf.tensor4d(wv, as4(c.filter));
    const g = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'same'))))([x, w]);
    return g.map((v) => v.dataSync().slice() as Float32Array);
  });
  await initBackend('cpu');
  const onCpu = grads();
  await initBackend('wasm');
  const onWasm = grads();
  assertClose(t, onWasm[0], onCpu[0], 'dx');
  assertClose(t, onWasm[1], onCpu[1], 'dW');
});

test('the committed conv2d.wasm is what npm run build:wasm builds from the source', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:conv2d', CONV2D_WASM_URL));
