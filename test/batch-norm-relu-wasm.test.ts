import test from 'ava';
import { BATCH_NORM_RELU_WASM_URL, BatchNormReluKernel } from '../src/compute/kernels/batch-norm-relu-wasm.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';
import { assertCommittedWasmIsFresh } from './helpers/committed-wasm.ts';

/**
 * The reference: training-mode relu(batchNorm(x)) forward and backward in plain JavaScript, f64 arithmetic in
 * row order, rounded to f32 on store (the project's implementation before the WebAssembly module). The module
 * must give the same bits.
 */
function reference(x: Float32Array, C: number, g: Float32Array, b: Float32Array, eps: number, dy: Float32Array) {
  const m = x.length / C;
  const mean = new Float64Array(C);
  for (let i = 0; i < x.length; i += C) for (let c = 0; c < C; c++) mean[c] += x[i + c];
  for (let c = 0; c < C; c++) mean[c] /= m;
  const variance = new Float64Array(C);
  for (let i = 0; i < x.length; i += C) {
    for (let c = 0; c < C; c++) {
      const d = x[i + c] - mean[c];
      variance[c] += d * d;
    }
  }
  const invStd = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    variance[c] /= m;
    invStd[c] = 1 / Math.sqrt(variance[c] + eps);
  }
  const xhat = new Float32Array(x.length);
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i += C) {
    for (let c = 0; c < C; c++) {
      const h = (x[i + c] - mean[c]) * invStd[c];
      xhat[i + c] = h;
      const v = g[c] * h + b[c];
      y[i + c] = v > 0 ? v : 0;
    }
  }
  const dyr = new Float32Array(dy.length);
  const dBeta = new Float64Array(C);
  const dGamma = new Float64Array(C);
  for (let i = 0; i < dy.length; i += C) {
    for (let c = 0; c < C; c++) {
      const d = y[i + c] > 0 ? dy[i + c] : 0;
      dyr[i + c] = d;
      dBeta[c] += d;
      dGamma[c] += d * xhat[i + c];
    }
  }
  const dx = new Float32Array(dy.length);
  for (let i = 0; i < dy.length; i += C) {
    for (let c = 0; c < C; c++) {
      dx[i + c] = g[c] * invStd[c] * (dyr[i + c] - dBeta[c] / m - xhat[i + c] * (dGamma[c] / m));
    }
  }
  return { y, xhat, mean, variance, invStd, dx, dGamma, dBeta };
}

function random(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const rng = new SeededRandom(seed, 7);
  return Float32Array.from({ length: n }, () => (rng.nextFloat() * 2 - 1) * scale + offset);
}

const bits = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

for (const [m, C] of [[2, 1], [7, 3], [2 * 32 * 32, 32], [5 * 8 * 8, 128], [3 * 16 * 16, 64]] as const) {
  test(`forward and backward match the f64 JavaScript reference bit for bit (${m} rows × ${C} channels)`, (t) => {
    const x = random(m * C, m + C, 3, 0.5);
    const gamma = random(C, 2, 0.5, 1);
    const beta = random(C, 3, 0.2);
    const dy = random(m * C, 4);
    const want = reference(x, C, gamma, beta, 1e-5, dy);
    const kernel = BatchNormReluKernel.instance();
    const fwd = kernel.forward(x, C, gamma, beta, 1e-5);
    const bwd = kernel.backward(dy, fwd, gamma);
    for (const key of ['y', 'xhat', 'mean', 'variance', 'invStd'] as const) t.deepEqual(bits(fwd[key]), bits(want[key]), key);
    for (const key of ['dx', 'dGamma', 'dBeta'] as const) t.deepEqual(bits(bwd[key]), bits(want[key]), key);
    // ReLU really cut something, and something passed.
    t.true(fwd.y.some((v) => v === 0) && fwd.y.some((v) => v > 0));
  });
}

test('a smaller call after a larger one reuses the memory and gives the same bits as a first call', (t) => {
  const kernel = BatchNormReluKernel.instance();
  const big = random(4096 * 16, 9);
  kernel.forward(big, 16, random(16, 1, 0.1, 1), random(16, 2), 1e-5);
  const x = random(40 * 8, 10);
  const gamma = random(8, 11, 0.1, 1);
  const beta = random(8, 12, 0.1);
  const want = reference(x, 8, gamma, beta, 1e-5, random(40 * 8, 13));
  t.deepEqual(bits(kernel.forward(x, 8, gamma, beta, 1e-5).y), bits(want.y));
});

test('shapes that do not make rows of C channels are refused', (t) => {
  const kernel = BatchNormReluKernel.instance();
  t.throws(() => kernel.forward(new Float32Array(10), 3, new Float32Array(3), new Float32Array(3), 1e-5), { instanceOf: RangeError });
  t.throws(() => kernel.forward(new Float32Array(12), 3, new Float32Array(2), new Float32Array(3), 1e-5), { instanceOf: RangeError });
});

test('the committed batch-norm-relu.wasm is what its source builds', (t) =>
  assertCommittedWasmIsFresh(t, 'build:wasm:batch-norm', BATCH_NORM_RELU_WASM_URL));
