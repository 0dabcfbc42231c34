import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { conv2dBackpropInputWasm, conv2dWasm } from './conv2d-wasm.ts';
import { maxPoolGrad2x2Into } from './max-pool-grad-2x2-wasm.ts';

/**
 * Faster replacements for four stock tfjs-wasm kernels that a training step leans on. Some stock ones are
 * scalar C++ loops ported from the cpu backend; these route the work to XNNPACK (through the backend's own
 * Transpose and BatchMatMul kernels), to our own WebAssembly SIMD module or to a tight JavaScript loop over the
 * wasm heap:
 *
 * - BatchMatMul with transposeA/transposeB (every backward matmul of a dense layer): the stock kernel takes
 *   XNNPACK's fast path only with both flags off and falls back to a naive triple loop otherwise. Here the
 *   flagged operand is transposed explicitly first, then the stock kernel runs with both flags off.
 * - Conv2D and Conv2DBackpropInput, NHWC, stride 1, dilation 1, zero padding, float32 (every convolution of the
 *   project's models): ./conv2d-wasm.ts, a register-tiled GEMM in ./conv2d.wasm, faster than the stock
 *   XNNPACK Conv2D (and than the stock Conv2DBackpropInput, a scalar loop, or XNNPACK on a rotated filter).
 * - MaxPoolGrad: one pass over the pooling windows, sending each window's gradient to its first maximum
 *   (row-major, strict >), exactly the cpu backend's rule; the 2×2/2 pools of bn-cnn in our own WebAssembly SIMD
 *   module (./max-pool-grad-2x2-wasm.ts), the others in a JavaScript loop over the wasm heap.
 *
 * Anything these do not cover (batched matmuls, strided or dilated convolutions, NCHW) goes to the stock
 * kernel unchanged (FusedConv2D, the tutorial CNN's forward convolution with bias and ReLU, stays XNNPACK's). Every replacement is deterministic: same inputs, same bytes.
 */

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };

/** Marks our configs so registration can tell them from the stock ones (idempotence). */
const OURS = Symbol('cifar-dp-trainer wasm kernel');
type OurConfig = tf.KernelConfig & { [OURS]: true };

function stock(name: string): tf.KernelConfig {
  const config = tf.getKernel(name, 'wasm');
  if (!config) throw new Error(`tfjs-backend-wasm has no '${name}' kernel to wrap; is @tensorflow/tfjs-backend-wasm 4.x installed?`);
  return config;
}

function call(name: string, args: KernelArgs): tf.TensorInfo {
  return stock(name).kernelFunc(args) as tf.TensorInfo;
}

/** The stock kernel each override delegates to, captured when the override is registered. */
const originals = new Map<string, tf.KernelFunc>();

function delegate(name: string, args: KernelArgs): tf.TensorInfo {
  const original = originals.get(name);
  if (!original) throw new Error(`The stock wasm '${name}' kernel was not captured.`);
  return original(args) as tf.TensorInfo;
}

// ---------------------------------------------------------------------------------------------- BatchMatMul

function batchMatMul(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const transposeA = Boolean(args.attrs?.transposeA);
  const transposeB = Boolean(args.attrs?.transposeB);
  const batch = (s: readonly number[]) => s.slice(0, -2).reduce((p, d) => p * d, 1);
  if ((!transposeA && !transposeB) || batch(a.shape) !== 1 || batch(b.shape) !== 1 || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return delegate('BatchMatMul', args);
  }
  const swapLast = (rank: number) => [...Array(rank - 2).keys(), rank - 1, rank - 2];
  const temps: tf.TensorInfo[] = [];
  try {
    let a2 = a;
    let b2 = b;
    if (transposeA) temps.push((a2 = call('Transpose', { inputs: { x: a }, backend, attrs: { perm: swapLast(a.shape.length) } })));
    if (transposeB) temps.push((b2 = call('Transpose', { inputs: { x: b }, backend, attrs: { perm: swapLast(b.shape.length) } })));
    // With both flags off and batch 1 the stock kernel uses XNNPACK's fully-connected operator. It caches that
    // operator per b tensor; disposing our temporary b2 below drops the cache entry with it.
    return delegate('BatchMatMul', { inputs: { a: a2, b: b2 }, backend, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

// ------------------------------------------------------------------------------ Conv2D, Conv2DBackpropInput

function conv2d(args: KernelArgs): tf.TensorInfo {
  return conv2dWasm(args) ?? delegate('Conv2D', args);
}

function conv2dBackpropInput(args: KernelArgs): tf.TensorInfo {
  return conv2dBackpropInputWasm(args) ?? delegate('Conv2DBackpropInput', args);
}

// ---------------------------------------------------------------------------------------------- MaxPoolGrad

function maxPoolGrad(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const attrs = (args.attrs ?? {}) as unknown as tf.MaxPoolGradAttrs;
  if (input.dtype !== 'float32' || dy.dtype !== 'float32') return delegate('MaxPoolGrad', args);
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode,
  );
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth, strideHeight, strideWidth } = info;
  const fh = info.effectiveFilterHeight;
  const fw = info.effectiveFilterWidth;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;

  const out = backend.makeOutput(input.shape, 'float32');
  // Views after the allocation: makeOutput may grow (and so detach) the wasm heap.
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const g = backend.typedArrayFromHeap(dy) as Float32Array;
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  if (fh === 2 && fw === 2 && strideHeight === 2 && strideWidth === 2 && padTop === 0 && padLeft === 0 &&
      2 * outHeight <= inHeight && 2 * outWidth <= inWidth) {
    maxPoolGrad2x2Into(x, input.shape, g, outHeight, outWidth, dx);
    return out;
  }
  dx.fill(0);
  const rowStride = inWidth * C;
  const imageStride = inHeight * rowStride;
  let gi = 0; // dy is [batch, outHeight, outWidth, C], walked in order
  for (let b = 0; b < batchSize; b++) {
    const base = b * imageStride;
    for (let yR = 0; yR < outHeight; yR++) {
      const r0 = Math.max(0, yR * strideHeight - padTop);
      const r1 = Math.min(inHeight, yR * strideHeight - padTop + fh);
      for (let yC = 0; yC < outWidth; yC++) {
        const c0 = Math.max(0, yC * strideWidth - padLeft);
        const c1 = Math.min(inWidth, yC * strideWidth - padLeft + fw);
        for (let d = 0; d < C; d++, gi++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let r = r0; r < r1; r++) {
            for (let c = c0, k = base + r * rowStride + c0 * C + d; c < c1; c++, k += C) {
              if (x[k] > best) {
                best = x[k];
                at = k;
              }
            }
          }
          if (at >= 0) dx[at] += g[gi];
        }
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------- registration

const OVERRIDES: ReadonlyArray<[string, (args: KernelArgs) => tf.TensorInfo]> = [
  ['BatchMatMul', batchMatMul],
  ['Conv2D', conv2d],
  ['Conv2DBackpropInput', conv2dBackpropInput],
  ['MaxPoolGrad', maxPoolGrad],
];

/** Kernel names this module replaces on 'wasm'. */
export const WASM_KERNEL_OVERRIDES: readonly string[] = OVERRIDES.map(([name]) => name);

/**
 * Replaces the stock wasm kernels above with these (keeping each stock kernel's setupFunc, which the stock
 * kernelFunc we delegate to depends on). Idempotent. Call before tf.setBackend('wasm') or after: setup
 * functions already ran for the stock kernels when the backend started.
 */
export function registerWasmTrainingKernels(): void {
  for (const [name, kernelFunc] of OVERRIDES) {
    const current = tf.getKernel(name, 'wasm');
    if (!current) throw new Error(`tfjs-backend-wasm has no '${name}' kernel to replace; is @tensorflow/tfjs-backend-wasm 4.x loaded?`);
    if ((current as Partial<OurConfig>)[OURS]) continue;
    originals.set(name, current.kernelFunc);
    tf.unregisterKernel(name, 'wasm');
    const config: OurConfig = {
      kernelName: name,
      backendName: 'wasm',
      kernelFunc: kernelFunc as tf.KernelFunc,
      setupFunc: current.setupFunc,
      disposeFunc: current.disposeFunc,
      [OURS]: true,
    };
    tf.registerKernel(config);
  }
}

/** Puts the stock kernels back (for comparisons in tests and benchmarks). */
export function unregisterWasmTrainingKernels(): void {
  for (const [name] of OVERRIDES) {
    const current = tf.getKernel(name, 'wasm');
    const original = originals.get(name);
    if (!current || !(current as Partial<OurConfig>)[OURS] || !original) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      kernelName: name, backendName: 'wasm', kernelFunc: original, setupFunc: current.setupFunc, disposeFunc: current.disposeFunc,
    });
    originals.delete(name);
  }
}
