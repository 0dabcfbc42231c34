import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';
import { conv2dAlgorithm } from './conv2d-algorithm.ts';
import { isNhwc, isOnes, stride1Padding } from './conv2d-geometry.ts';
import { winogradBackpropFilterInto } from './winograd-conv2d-backprop-filter-wasm.ts';

/**
 * Conv2DBackpropFilter for the tfjs 'wasm' backend, which ships without one (training a conv net on wasm
 * otherwise fails at the first backward pass with "Kernel 'Conv2DBackpropFilter' not registered").
 *
 * Supported: NHWC, stride 1, dilation 1, any zero padding ('valid', 'same', numeric or explicit) — what the
 * project's models use. Anything else throws a BackendError naming the attribute.
 *
 * For x [N, H, W, Cin] (zero-padded by top/left) and dy [N, OH, OW, Cout] the filter gradient is
 *   dW[i, j, ci, co] = Σ_{n, oh, ow} xpad[n, oh + i, ow + j, ci] · dy[n, oh, ow, co],
 * for each i a GEMM dW[i][(j, ci), co] = Σ_pixels X_i[pixel, (j, ci)] · dY[pixel, co] with a long reduction
 * over the N·OH·OW pixels. It runs in our own WebAssembly SIMD module (./conv2d-backprop-filter.wasm, source
 * ./assembly/conv2d-backprop-filter.ts): x is copied from the wasm backend's heap into the module's memory as
 * the zero-padded xpad, dy as it is; the module sums register tiles of 4 (j, ci) × 8 co over chunks of output
 * rows that stay in cache, adding each chunk's sums into dW; dW is copied into the output tensor.
 * (This replaced transpose + XNNPACK Conv2D with the batch as the channel axis + transpose, about 2× slower.)
 * 3×3 filters with enough channels go to Winograd instead (./winograd-conv2d-backprop-filter-wasm.ts), by the fixed
 * rule of ./conv2d-algorithm.ts.
 *
 * Deterministic: plain IEEE f32 mul and add in an order that depends only on the shapes, so the same inputs
 * give the same bytes on every call, instance and thread (it differs from XNNPACK's order in the last bits).
 * One module instance per thread, its memory grown to the largest call seen and reused.
 */
export const CONV2D_BACKPROP_FILTER = 'Conv2DBackpropFilter';

interface Attrs {
  strides?: number | readonly number[];
  pad?: unknown;
  dataFormat?: string;
  dilations?: number | readonly number[];
  dimRoundingMode?: string;
  filterShape?: readonly number[];
}

function unsupported(what: string): never {
  throw new BackendError(
    `The wasm Conv2DBackpropFilter kernel supports only NHWC, stride 1, zero padding and dilation 1; ` +
      `this model asked for ${what}. Use --backend cpu (slow) or change the layer.`,
  );
}

function checkAttrs(attrs: Attrs, xShape: readonly number[], dyShape: readonly number[]): number[] {
  if (!isNhwc(attrs.dataFormat)) unsupported(`dataFormat '${attrs.dataFormat}'`);
  if (!isOnes(attrs.strides)) unsupported(`strides ${JSON.stringify(attrs.strides)}`);
  if (!isOnes(attrs.dilations)) unsupported(`dilations ${JSON.stringify(attrs.dilations)}`);
  const pad = stride1Padding(attrs.pad, xShape, attrs.filterShape);
  if (!pad) unsupported(`padding ${JSON.stringify(attrs.pad)}`);
  if (xShape.length !== 4 || dyShape.length !== 4) {
    unsupported(`x of shape [${xShape}] and dy of shape [${dyShape}] (both must be rank 4)`);
  }
  const kh = xShape[1] + pad[0] + pad[1] - dyShape[1] + 1;
  const kw = xShape[2] + pad[2] + pad[3] - dyShape[2] + 1;
  if (xShape[0] !== dyShape[0] || kh < 1 || kw < 1) {
    unsupported(`x of shape [${xShape}] with dy of shape [${dyShape}] and padding ${JSON.stringify(attrs.pad)} (not a stride-1 convolution)`);
  }
  const fs = attrs.filterShape;
  if (fs && (fs[0] !== kh || fs[1] !== kw || fs[2] !== xShape[3] || fs[3] !== dyShape[3])) {
    unsupported(`filterShape [${fs}] for x [${xShape}], dy [${dyShape}] and padding ${JSON.stringify(attrs.pad)}`);
  }
  return pad;
}

interface Exports {
  memory: { buffer: ArrayBuffer };
  prepare(n: number, h: number, w: number, cin: number, oh: number, ow: number, cout: number, kh: number, kw: number, top: number, left: number): number;
  rowPtr(b: number, r: number): number;
  dyPtr(): number;
  dwPtr(): number;
  compute(): void;
}

export const CONV2D_BACKPROP_FILTER_WASM_URL = new URL('./conv2d-backprop-filter.wasm', import.meta.url);

const MODULE = new WasmModule<Exports>(
  CONV2D_BACKPROP_FILTER_WASM_URL,
  (message) => new BackendError(`The wasm Conv2DBackpropFilter kernel failed: ${message}`),
);
let instance: Exports | null = null; // one per thread (module-level state is per thread)

/**
 * dW [kh, kw, Cin, Cout] of x [N, H, W, Cin] and dy [N, OH, OW, Cout] with zero padding top/left (stride 1),
 * into `out`. Plain Float32Arrays: the kernel's core, also usable without a backend.
 */
export function conv2dBackpropFilterInto(
  x: Float32Array, xShape: readonly number[], dy: Float32Array, dyShape: readonly number[],
  kh: number, kw: number, top: number, left: number, out: Float32Array,
): void {
  const [n, h, w, cin] = xShape;
  const [, oh, ow, cout] = dyShape;
  const m = (instance ??= MODULE.instantiate());
  if (m.prepare(n, h, w, cin, oh, ow, cout, kh, kw, top, left) !== 1) {
    throw new BackendError(`The wasm Conv2DBackpropFilter kernel cannot take x [${xShape}], dy [${dyShape}] (out of memory?).`);
  }
  // Views after prepare(): it may grow (and so detach) the module's memory.
  const heap = new Float32Array(m.memory.buffer);
  const rowLen = w * cin;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < h; r++) {
      const src = (b * h + r) * rowLen;
      heap.set(x.subarray(src, src + rowLen), m.rowPtr(b, r) >>> 2);
    }
  }
  heap.set(dy.subarray(0, n * oh * ow * cout), m.dyPtr() >>> 2);
  m.compute();
  const dw = m.dwPtr() >>> 2;
  out.set(heap.subarray(dw, dw + kh * kw * cin * cout));
}

function conv2dBackpropFilterWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs;
  if (!x || !dy) throw new BackendError('Conv2DBackpropFilter (wasm) needs inputs x and dy.');
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') unsupported(`dtypes ${x.dtype}/${dy.dtype} (float32 only)`);
  const [top, bottom, left, right] = checkAttrs((args.attrs ?? {}) as Attrs, x.shape, dy.shape);
  const kh = x.shape[1] + top + bottom - dy.shape[1] + 1;
  const kw = x.shape[2] + left + right - dy.shape[2] + 1;
  const out = backend.makeOutput([kh, kw, x.shape[3], dy.shape[3]], 'float32');
  try {
    // Views after the allocation: makeOutput may grow (and so detach) the backend's heap.
    const xv = backend.typedArrayFromHeap(x) as Float32Array;
    const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
    const ov = backend.typedArrayFromHeap(out) as Float32Array;
    const algorithm = conv2dAlgorithm(kh, kw, x.shape[3], dy.shape[3], dy.shape[1], dy.shape[2]);
    if (algorithm !== 'direct') {
      winogradBackpropFilterInto(xv, x.shape, dyv, dy.shape, top, left, ov, algorithm === 'winograd-f4' ? 4 : 2);
    } else {
      conv2dBackpropFilterInto(xv, x.shape, dyv, dy.shape, kh, kw, top, left, ov);
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  }
  return out;
}

export const conv2dBackpropFilterWasmConfig: tf.KernelConfig = {
  kernelName: CONV2D_BACKPROP_FILTER,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropFilterWasm as tf.KernelFunc,
};

/**
 * Registers the kernel unless this thread already has a wasm Conv2DBackpropFilter (ours from an earlier
 * call, or a future tfjs release's own). Returns true when it registered it now.
 */
export function registerConv2dBackpropFilterWasm(): boolean {
  if (tf.getKernel(CONV2D_BACKPROP_FILTER, 'wasm')) return false;
  tf.registerKernel(conv2dBackpropFilterWasmConfig);
  return true;
}
