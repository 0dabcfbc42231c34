import type { ExecutionContext } from 'ava';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/compute/backend.ts';
import { SeededRandom } from '../../src/random/seeded-random.ts';

/**
 * tfjs-cpu's stride-1 convolution kernels as the reference for the project's wasm kernels, on realistic data, and
 * the tolerances the tests allow.
 *
 * Tolerance: max |kernel − cpu| ≤ tol · max |cpu| over the whole output. Measured against a float64 reference on
 * the layers of bn-cnn and airbench (activations after ReLU, He-initialised filters, shards of 8–32 images), the
 * worst max-relative errors were: direct 2e-6, F(2×2) 3e-6, F(4×4) 1.3e-5 (the filter gradient of 32×32×32,
 * summed over 1,024 tiles; forward and input gradient ≤ 1.2e-5), RMS-relative ≤ 5.4e-6; tfjs-cpu's own float32
 * error is of the direct kernels' size. So: 1e-5 for direct and F(2×2), as the direct kernels' tests always allowed,
 * and 5e-5 for F(4×4), about 4× its worst measured error and 10⁴× below anything that would change how a network
 * trains (batch norm and SGD noise are of order 1e-2).
 */
export const TOLERANCE = { direct: 1e-5, f2: 1e-5, f4: 5e-5 } as const;

export const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
export const as4 = (s: readonly number[]) => s as unknown as [number, number, number, number];

/** Uniform values in [−scale, scale), or [0, scale) with half zeros (relu): ReLU'd activations. */
export function realistic(count: number, seed: number, scale = 1, relu = false): Float32Array {
  const rng = new SeededRandom(seed, 1717);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const v = rng.nextFloat() * 2 - 1;
    out[i] = (relu ? Math.max(0, v) : v) * scale;
  }
  return out;
}

export type Pad = 'valid' | 'same' | number | number[][];

/** The backend's `kernel` on copies of the inputs. */
export function runKernel(kernel: string, inputs: Record<string, [Float32Array, readonly number[]]>, attrs: Record<string, unknown>): Float32Array {
  return tf.tidy(() => {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [k, [v, shape]] of Object.entries(inputs)) tensors[k] = tf.tensor(v.slice(), [...shape]);
    const out = tf.engine().runKernel(kernel, tensors, attrs as tf.NamedAttrMap) as tf.Tensor;
    return out.dataSync().slice() as Float32Array;
  });
}

/**
 * Conv2D and Conv2DBackpropInput (`what` 'forward'), or Conv2DBackpropFilter ('filter-grad'), of tfjs-cpu
 * (stride 1, NHWC); the outputs not asked for are empty.
 */
export async function cpuReference(
  x: Float32Array, xShape: readonly number[], filter: Float32Array, filterShape: readonly number[], dy: Float32Array, pad: Pad,
  what: 'forward' | 'filter-grad' = 'forward',
): Promise<{ y: Float32Array; dx: Float32Array; dw: Float32Array; yShape: number[] }> {
  await initBackend('cpu');
  const yShape = tf.backend_util.computeConv2DInfo(as4(xShape), as4(filterShape), 1, 1, pad as 'valid').outShape;
  const attrs = { strides: 1, pad, dataFormat: 'NHWC', dilations: 1 };
  const none = new Float32Array(0);
  if (what === 'filter-grad') {
    return { yShape, y: none, dx: none, dw: runKernel('Conv2DBackpropFilter', { x: [x, xShape], dy: [dy, yShape] }, { ...attrs, filterShape: [...filterShape] }) };
  }
  return {
    yShape,
    y: runKernel('Conv2D', { x: [x, xShape], filter: [filter, filterShape] }, attrs),
    dx: runKernel('Conv2DBackpropInput', { dy: [dy, yShape], filter: [filter, filterShape] }, { ...attrs, inputShape: [...xShape] }),
    dw: none,
  };
}

/** max |actual − expected| / max |expected|. */
export function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
  }
  return maxDiff / maxRef;
}

export function assertClose(t: ExecutionContext, actual: Float32Array, expected: Float32Array, tolerance: number, what: string): void {
  t.is(actual.length, expected.length, `${what}: length`);
  t.true(expected.some((v) => Math.abs(v) > 1e-3), `${what}: the reference is not trivially small`);
  const err = maxRelativeError(actual, expected);
  t.true(err <= tolerance, `${what}: max |wasm − cpu| / max |cpu| = ${err.toExponential(2)} > ${tolerance}`);
}

export const sameBytes = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
