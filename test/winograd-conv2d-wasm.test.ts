import test from 'ava';
import * as tf from '@tensorflow/tfjs-core';
import { stride1Padding } from '../src/compute/kernels/conv2d-geometry.ts';
import { WINOGRAD_CONV2D_WASM_URL, type WinogradTile, winogradCorrelateInto } from '../src/compute/kernels/winograd-conv2d-wasm.ts';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';
import { type Pad, TOLERANCE, as4, assertClose, cpuReference, realistic, sameBytes, size } from './helpers/conv-reference.ts';
import { runInThread } from './helpers/kernel-thread.ts';

// Conv2D and Conv2DBackpropInput by Winograd F(2×2, 3×3) and F(4×4, 3×3) against tfjs-cpu (tolerances in
// ./helpers/conv-reference.ts), and the same bytes on every call, thread and blocking.

interface Case { name: string; x: number[]; cout: number; pad: Pad }

const CASES: readonly Case[] = [
  // Edges: channel counts off 4 and 8, sizes off the 2×2 and 4×4 tiles, batch tails of tile blocks, paddings.
  { name: 'Cin 5, Cout 13, 7×9, batch 3', x: [3, 7, 9, 5], cout: 13, pad: 'same' },
  { name: 'Cin 1, Cout 1, 5×6', x: [1, 5, 6, 1], cout: 1, pad: 'same' },
  { name: 'Cin 4, Cout 8, 8×8 (whole tiles)', x: [2, 8, 8, 4], cout: 8, pad: 'same' },
  { name: 'Cin 7, Cout 6, 10×6 valid', x: [2, 10, 6, 7], cout: 6, pad: 'valid' },
  { name: 'Cin 3, Cout 5, 1×1 (smaller than a tile)', x: [2, 1, 1, 3], cout: 5, pad: 'same' },
  { name: 'Cin 12, Cout 20, 3×3, batch 5', x: [5, 3, 3, 12], cout: 20, pad: 'same' },
  { name: 'asymmetric padding', x: [2, 9, 10, 4], cout: 9, pad: [[0, 0], [2, 0], [0, 1], [0, 0]] },
  { name: 'padding larger than the kernel', x: [1, 5, 5, 4], cout: 8, pad: [[0, 0], [3, 3], [2, 3], [0, 0]] },
  // The real layers (small shards): bn-cnn, airbench94 (31×31 and the odd sizes 15, 7, 3).
  { name: 'bn-cnn conv2 32→32 32×32', x: [2, 32, 32, 32], cout: 32, pad: 'same' },
  { name: 'bn-cnn conv3 32→64 16×16', x: [2, 16, 16, 32], cout: 64, pad: 'same' },
  { name: 'bn-cnn conv4 64→64 16×16', x: [2, 16, 16, 64], cout: 64, pad: 'same' },
  { name: 'bn-cnn conv5 64→128 8×8', x: [3, 8, 8, 64], cout: 128, pad: 'same' },
  { name: 'airbench 24→64 31×31', x: [2, 31, 31, 24], cout: 64, pad: 'same' },
  { name: 'airbench 64→64 15×15', x: [2, 15, 15, 64], cout: 64, pad: 'same' },
  { name: 'airbench 64→256 15×15', x: [1, 15, 15, 64], cout: 256, pad: 'same' },
  { name: 'airbench 256→256 7×7', x: [2, 7, 7, 256], cout: 256, pad: 'same' },
  { name: 'airbench 256→256 3×3', x: [3, 3, 3, 256], cout: 256, pad: 'same' },
];

const TILES: readonly WinogradTile[] = [2, 4];

function inputs(c: Case, k: number) {
  const filterShape = [3, 3, c.x[3], c.cout];
  return {
    x: realistic(size(c.x), 10 * k + 1, 1, true),
    filter: realistic(size(filterShape), 10 * k + 2, Math.sqrt(6 / (9 * c.x[3]))),
    filterShape,
  };
}

/** The two correlations the kernels run for a case: Conv2D of x, Conv2DBackpropInput of dy. */
function calls(c: Case, yShape: number[]) {
  const [top, , left] = stride1Padding(c.pad, c.x, [3, 3, c.x[3], c.cout])!;
  return {
    forward: (x: Float32Array, filter: Float32Array, m: WinogradTile, blocking?: { tiles: number; slab: number }) => {
      const out = new Float32Array(size(yShape));
      winogradCorrelateInto(x, c.x, top, left, filter, 'forward', yShape[1], yShape[2], c.cout, out, m, blocking);
      return out;
    },
    inputGrad: (dy: Float32Array, filter: Float32Array, m: WinogradTile, blocking?: { tiles: number; slab: number }) => {
      const out = new Float32Array(size(c.x));
      winogradCorrelateInto(dy, yShape, 2 - top, 2 - left, filter, 'backprop-input', c.x[1], c.x[2], c.x[3], out, m, blocking);
      return out;
    },
    top, left,
  };
}

for (const [k, c] of CASES.entries()) {
  test.serial(`matches tfjs-cpu and repeats its bytes, F(2×2) and F(4×4): ${c.name}`, async (t) => {
    const { x, filter, filterShape } = inputs(c, k);
    const yShape = tf.backend_util.computeConv2DInfo(as4(c.x), as4(filterShape), 1, 1, c.pad as 'valid').outShape;
    const dy = realistic(size(yShape), 10 * k + 3, 1e-2);
    const ref = await cpuReference(x, c.x, filter, filterShape, dy, c.pad);
    const run = calls(c, yShape);
    for (const m of TILES) {
      const tol = m === 4 ? TOLERANCE.f4 : TOLERANCE.f2;
      const y = run.forward(x, filter, m);
      const dx = run.inputGrad(dy, filter, m);
      assertClose(t, y, ref.y, tol, `F(${m}×${m}) Conv2D`);
      assertClose(t, dx, ref.dx, tol, `F(${m}×${m}) Conv2DBackpropInput`);
      t.true(sameBytes(run.forward(x, filter, m), y), `F(${m}×${m}) Conv2D: same bytes again`);
      t.true(sameBytes(run.inputGrad(dy, filter, m), dx), `F(${m}×${m}) Conv2DBackpropInput: same bytes again`);
    }
  });
}

test.serial('tiles per block and channels per pass order independent work only: the bytes do not change', (t) => {
  const c = CASES.find((k) => k.name === 'airbench 64→64 15×15')!;
  const { x, filter } = inputs(c, 50);
  const yShape = [c.x[0], c.x[1], c.x[2], c.cout];
  const dy = realistic(size(yShape), 53, 1e-2);
  const run = calls(c, yShape);
  for (const m of TILES) {
    const y = run.forward(x, filter, m);
    const dx = run.inputGrad(dy, filter, m);
    for (const blocking of [{ tiles: 4, slab: 8 }, { tiles: 12, slab: 24 }, { tiles: 128, slab: 64 }]) {
      t.true(sameBytes(run.forward(x, filter, m, blocking), y), `F(${m}×${m}) Conv2D, ${JSON.stringify(blocking)}`);
      t.true(sameBytes(run.inputGrad(dy, filter, m, blocking), dx), `F(${m}×${m}) Conv2DBackpropInput, ${JSON.stringify(blocking)}`);
    }
  }
});

test.serial('same bytes whatever ran before: memory grown by a larger call and reused', (t) => {
  const small = CASES[0];
  const large = CASES.find((k) => k.name === 'airbench 256→256 7×7')!;
  const si = inputs(small, 60);
  const li = inputs(large, 61);
  const sRun = calls(small, [3, 7, 9, 13]);
  const lRun = calls(large, [2, 7, 7, 256]);
  for (const m of TILES) {
    const first = sRun.forward(si.x, si.filter, m);
    const big = lRun.forward(li.x, li.filter, m);
    t.true(sameBytes(sRun.forward(si.x, si.filter, m), first));
    t.true(sameBytes(lRun.forward(li.x, li.filter, m), big));
  }
});

test('another thread (its own module instance) computes the same bytes', async (t) => {
  const c = CASES.find((k) => k.name === 'bn-cnn conv5 64→128 8×8')!;
  const { x, filter } = inputs(c, 70);
  const yShape = [c.x[0], 8, 8, c.cout];
  const dy = realistic(size(yShape), 73, 1e-2);
  const run = calls(c, yShape);
  for (const m of TILES) {
    const [y, dx] = await Promise.all([
      runInThread({ kernel: 'correlate', a: x, aShape: c.x, top: run.top, left: run.left, filter, mode: 'forward', oh: 8, ow: 8, cout: c.cout, m }),
      runInThread({ kernel: 'correlate', a: dy, aShape: yShape, top: 2 - run.top, left: 2 - run.left, filter, mode: 'backprop-input', oh: 8, ow: 8, cout: c.x[3], m }),
    ]);
    t.true(sameBytes(y, run.forward(x, filter, m)), `F(${m}×${m}) Conv2D`);
    t.true(sameBytes(dx, run.inputGrad(dy, filter, m)), `F(${m}×${m}) Conv2DBackpropInput`);
  }
});

test('the committed winograd-conv2d.wasm is what npm run build:wasm builds from the source', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:winograd-conv2d', WINOGRAD_CONV2D_WASM_URL));
