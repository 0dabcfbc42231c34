import test from 'ava';
import { stride1Padding } from '../src/compute/kernels/conv2d-geometry.ts';
import type { WinogradTile } from '../src/compute/kernels/winograd-conv2d-wasm.ts';
import { WINOGRAD_CONV2D_BACKPROP_FILTER_WASM_URL, winogradBackpropFilterInto } from '../src/compute/kernels/winograd-conv2d-backprop-filter-wasm.ts';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';
import { type Pad, TOLERANCE, assertClose, cpuReference, realistic, sameBytes, size } from './helpers/conv-reference.ts';
import { runInThread } from './helpers/kernel-thread.ts';

// Conv2DBackpropFilter by Winograd F(2×2, 3×3) and F(4×4, 3×3) against tfjs-cpu (tolerances in
// ./helpers/conv-reference.ts), and the same bytes on every call, thread and blocking.

interface Case { name: string; x: number[]; cout: number; pad: Pad }

const CASES: readonly Case[] = [
  { name: 'Cin 5, Cout 13, 7×9, batch 3', x: [3, 7, 9, 5], cout: 13, pad: 'same' },
  { name: 'Cin 1, Cout 1, 5×6', x: [1, 5, 6, 1], cout: 1, pad: 'same' },
  { name: 'Cin 4, Cout 8, 8×8 (whole tiles)', x: [2, 8, 8, 4], cout: 8, pad: 'same' },
  { name: 'Cin 7, Cout 6, 10×6 valid', x: [2, 10, 6, 7], cout: 6, pad: 'valid' },
  { name: 'Cin 3, Cout 5, 1×1 (smaller than a tile)', x: [2, 1, 1, 3], cout: 5, pad: 'same' },
  { name: 'Cin 12, Cout 20, 3×3, batch 5', x: [5, 3, 3, 12], cout: 20, pad: 'same' },
  { name: 'asymmetric padding', x: [2, 9, 10, 4], cout: 9, pad: [[0, 0], [2, 0], [0, 1], [0, 0]] },
  { name: 'bn-cnn conv2 32→32 32×32', x: [2, 32, 32, 32], cout: 32, pad: 'same' },
  { name: 'bn-cnn conv4 64→64 16×16', x: [2, 16, 16, 64], cout: 64, pad: 'same' },
  { name: 'bn-cnn conv5 64→128 8×8', x: [3, 8, 8, 64], cout: 128, pad: 'same' },
  { name: 'airbench 24→64 31×31', x: [2, 31, 31, 24], cout: 64, pad: 'same' },
  { name: 'airbench 64→256 15×15', x: [1, 15, 15, 64], cout: 256, pad: 'same' },
  { name: 'airbench 256→256 7×7', x: [1, 7, 7, 256], cout: 256, pad: 'same' },
  { name: 'airbench 256→256 3×3', x: [3, 3, 3, 256], cout: 256, pad: 'same' },
];

const TILES: readonly WinogradTile[] = [2, 4];

function setup(c: Case, k: number) {
  const filterShape = [3, 3, c.x[3], c.cout];
  const [top, bottom, left, right] = stride1Padding(c.pad, c.x, filterShape)!;
  const dyShape = [c.x[0], c.x[1] + top + bottom - 2, c.x[2] + left + right - 2, c.cout];
  const x = realistic(size(c.x), 10 * k + 1, 1, true);
  const dy = realistic(size(dyShape), 10 * k + 3, 1e-2);
  const grad = (m: WinogradTile, tiles?: number) => {
    const out = new Float32Array(size(filterShape));
    winogradBackpropFilterInto(x, c.x, dy, dyShape, top, left, out, m, tiles);
    return out;
  };
  return { filterShape, dyShape, x, dy, top, left, grad };
}

for (const [k, c] of CASES.entries()) {
  test.serial(`matches tfjs-cpu and repeats its bytes, F(2×2) and F(4×4): ${c.name}`, async (t) => {
    const s = setup(c, k);
    const ref = await cpuReference(s.x, c.x, new Float32Array(size(s.filterShape)), s.filterShape, s.dy, c.pad, 'filter-grad');
    for (const m of TILES) {
      const dw = s.grad(m);
      assertClose(t, dw, ref.dw, m === 4 ? TOLERANCE.f4 : TOLERANCE.f2, `F(${m}×${m}) Conv2DBackpropFilter`);
      t.true(sameBytes(s.grad(m), dw), `F(${m}×${m}): same bytes again`);
    }
  });
}

test.serial('tiles per block order independent work only: the sums, and so the bytes, do not change', (t) => {
  const s = setup(CASES.find((k) => k.name === 'bn-cnn conv4 64→64 16×16')!, 50);
  for (const m of TILES) {
    const dw = s.grad(m);
    for (const tiles of [1, 3, 7, 1000]) t.true(sameBytes(s.grad(m, tiles), dw), `F(${m}×${m}), ${tiles} tiles per block`);
  }
});

test.serial('same bytes whatever ran before: memory grown by a larger call and reused', (t) => {
  const small = setup(CASES[0], 60);
  const large = setup(CASES.find((k) => k.name === 'airbench 256→256 7×7')!, 61);
  for (const m of TILES) {
    const first = small.grad(m);
    const big = large.grad(m);
    t.true(sameBytes(small.grad(m), first));
    t.true(sameBytes(large.grad(m), big));
  }
});

test('another thread (its own module instance) computes the same bytes', async (t) => {
  const c = CASES.find((k) => k.name === 'bn-cnn conv5 64→128 8×8')!;
  const s = setup(c, 70);
  for (const m of TILES) {
    const dw = await runInThread({ kernel: 'filter-grad', x: s.x, xShape: c.x, dy: s.dy, dyShape: s.dyShape, top: s.top, left: s.left, m });
    t.true(sameBytes(dw, s.grad(m)), `F(${m}×${m})`);
  }
});

test('the committed winograd-conv2d-backprop-filter.wasm is what npm run build:wasm builds from the source', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:winograd-conv2d-backprop-filter', WINOGRAD_CONV2D_BACKPROP_FILTER_WASM_URL));
