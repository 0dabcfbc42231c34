import test from 'ava';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/compute/backend.ts';
import { WASM_KERNEL_OVERRIDES, registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../src/compute/kernels/wasm-training-kernels.ts';
import { SeededRandom } from '../src/random/seeded-random.ts';

interface Input { shape: number[]; values: Float32Array }
interface Case { kernel: string; name: string; inputs: Record<string, Input>; attrs: Record<string, unknown> }

let seed = 1;
function input(shape: number[], levels = 0): Input {
  const rng = new SeededRandom(seed++, 5);
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  // levels > 0: few distinct values, so max-pool windows hold ties.
  for (let i = 0; i < values.length; i++) values[i] = levels ? rng.nextInt(levels) : rng.nextFloat() * 2 - 1;
  return { shape, values };
}

function run(c: Case): Float32Array {
  return tf.tidy(() => {
    const inputs: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(c.inputs)) inputs[k] = tf.tensor(v.values.slice(), v.shape);
    const out = tf.engine().runKernel(c.kernel, inputs, c.attrs as tf.NamedAttrMap) as tf.Tensor;
    return out.dataSync().slice() as Float32Array;
  });
}

function maxPoolCase(name: string, shape: number[], filterSize: number, strides: number, pad: 'valid' | 'same', levels = 0): Case {
  const x = input(shape, levels);
  // MaxPoolGrad's inputs: dy (shape of the pool output), the pool input and the pool output.
  const y = tf.tidy(() => {
    const t = tf.maxPool(tf.tensor4d(x.values, shape as [number, number, number, number]), filterSize, strides, pad);
    return { shape: t.shape as number[], values: t.dataSync().slice() as Float32Array };
  });
  return { kernel: 'MaxPoolGrad', name, inputs: { dy: input(y.shape), input: x, output: y }, attrs: { filterSize, strides, pad } };
}

const cases = (): Case[] => [
  // The tutorial CNN's dense layers, backward: dA = dy·Bᵀ and dB = Aᵀ·dy.
  { kernel: 'BatchMatMul', name: 'fc1 dA (transposeB)', inputs: { a: input([64, 120]), b: input([576, 120]) }, attrs: { transposeA: false, transposeB: true } },
  { kernel: 'BatchMatMul', name: 'fc1 dB (transposeA)', inputs: { a: input([64, 576]), b: input([64, 120]) }, attrs: { transposeA: true, transposeB: false } },
  { kernel: 'BatchMatMul', name: 'both transposed', inputs: { a: input([7, 5]), b: input([3, 7]) }, attrs: { transposeA: true, transposeB: true } },
  { kernel: 'BatchMatMul', name: 'rank 3, batch 1', inputs: { a: input([1, 9, 4]), b: input([1, 6, 4]) }, attrs: { transposeA: false, transposeB: true } },
  { kernel: 'BatchMatMul', name: 'batched (stock path)', inputs: { a: input([3, 5, 4]), b: input([3, 6, 4]) }, attrs: { transposeA: false, transposeB: true } },
  { kernel: 'BatchMatMul', name: 'no flags (stock path)', inputs: { a: input([8, 5]), b: input([5, 3]) }, attrs: { transposeA: false, transposeB: false } },
  // conv2's input gradient, and paddings the replacement also handles; stride 2 goes to the stock kernel.
  ...(['valid', 'same', 1, [[0, 0], [0, 2], [1, 0], [0, 0]]] as const).map((pad): Case => {
    const out = tf.backend_util.computeConv2DInfo([8, 15, 15, 6], [3, 3, 6, 16], 1, 1, pad as 'valid').outShape;
    return {
      kernel: 'Conv2DBackpropInput', name: `conv2 dx, pad ${JSON.stringify(pad)}`,
      inputs: { dy: input(out), filter: input([3, 3, 6, 16]) },
      attrs: { strides: 1, pad, dataFormat: 'NHWC', inputShape: [8, 15, 15, 6] },
    };
  }),
  {
    kernel: 'Conv2DBackpropInput', name: 'stride 2 (stock path)',
    inputs: { dy: input([2, 7, 7, 4]), filter: input([3, 3, 5, 4]) },
    attrs: { strides: 2, pad: 'valid', dataFormat: 'NHWC', inputShape: [2, 15, 15, 5] },
  },
  maxPoolCase('pool1 2×2/2', [8, 30, 30, 6], 2, 2, 'valid'),
  maxPoolCase('pool2 2×2/2, odd size', [8, 13, 13, 16], 2, 2, 'valid'),
  maxPoolCase('2×2/2 with ties', [4, 12, 12, 3], 2, 2, 'valid', 3),
  maxPoolCase('3×3/1 overlapping, ties', [2, 9, 9, 4], 3, 1, 'valid', 4),
  maxPoolCase('3×3/2 same padding, ties', [2, 11, 11, 3], 3, 2, 'same', 3),
];

test.serial('every replacement matches the cpu backend, is deterministic and leaks nothing', async (t) => {
  await initBackend('cpu');
  const all = cases();
  const expected = all.map(run);
  await initBackend('wasm');
  for (const [i, c] of all.entries()) {
    run(c); // warm-up: XNNPACK operators etc.
    const buffers = tf.backend().numDataIds();
    const tensors = tf.memory().numTensors;
    const a = run(c);
    const b = run(c);
    t.is(tf.backend().numDataIds(), buffers, `${c.kernel} ${c.name}: wasm buffers`);
    t.is(tf.memory().numTensors, tensors, `${c.kernel} ${c.name}: tensors`);
    const e = expected[i];
    t.is(a.length, e.length, c.name);
    let scale = 0;
    let diff = 0;
    for (let k = 0; k < e.length; k++) {
      scale = Math.max(scale, Math.abs(e[k]));
      diff = Math.max(diff, Math.abs(a[k] - e[k]));
    }
    t.true(scale > 0, `${c.kernel} ${c.name}: non-trivial reference`);
    // MaxPoolGrad routes each dy to one place: exact (ties included) unless windows overlap, where sums of
    // several dy values may round differently (the cpu backend adds in float64).
    const overlapping = c.kernel === 'MaxPoolGrad' && (c.attrs.filterSize as number) > (c.attrs.strides as number);
    const tolerance = c.kernel !== 'MaxPoolGrad' ? 1e-5 * scale : overlapping ? 1e-6 * scale : 0;
    t.true(diff <= tolerance, `${c.kernel} ${c.name}: max |wasm − cpu| = ${diff}, max |cpu| = ${scale}`);
    t.deepEqual(Buffer.from(a.buffer), Buffer.from(b.buffer), `${c.kernel} ${c.name}: deterministic`);
  }
});

test.serial('registration is idempotent and reversible', async (t) => {
  await initBackend('wasm');
  const ours = WASM_KERNEL_OVERRIDES.map((name) => tf.getKernel(name, 'wasm'));
  registerWasmTrainingKernels();
  t.deepEqual(WASM_KERNEL_OVERRIDES.map((name) => tf.getKernel(name, 'wasm')), ours, 'a second registration changes nothing');

  const c = cases()[1];
  const fast = run(c);
  unregisterWasmTrainingKernels();
  try {
    for (const [i, name] of WASM_KERNEL_OVERRIDES.entries()) t.not(tf.getKernel(name, 'wasm'), ours[i], `${name} is stock again`);
    const slow = run(c);
    let diff = 0;
    for (let k = 0; k < slow.length; k++) diff = Math.max(diff, Math.abs(slow[k] - fast[k]));
    t.true(diff < 1e-4, `stock and replacement agree (${diff})`);
  } finally {
    registerWasmTrainingKernels();
  }
});
