import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';
import { conv2dAlgorithm } from './conv2d-algorithm.ts';
import { isNhwc, isOnes, stride1Padding } from './conv2d-geometry.ts';
import { winogradCorrelateInto } from './winograd-conv2d-wasm.ts';

/**
 * Conv2D and Conv2DBackpropInput for the tfjs 'wasm' backend, in our own WebAssembly SIMD module
 * (./conv2d.wasm, source ./assembly/conv2d.ts), for what the project's models use: NHWC, stride 1,
 * dilation 1, any zero padding ('valid', 'same', numeric or explicit), float32. Both are one stride-1
 * correlation of a zero-padded input with a packed filter:
 *
 * - Conv2D: y[n, oh, ow, co] = Σ_{i, j, ci} xpad[n, oh + i, ow + j, ci] · W[i, j, ci, co].
 * - Conv2DBackpropInput: dx[n, h, w, ci] = Σ_{i, j, co} dypad[n, h + i, w + j, co] · W[kh−1−i, kw−1−j, ci, co],
 *   dy padded by (kh − 1 − top, kw − 1 − left) (cropped where the forward padding exceeds the kernel).
 *
 * The input is copied from the wasm backend's heap into the module's memory as the zero-padded image, the
 * filter packed there into panels of 8 output channels; the module sums register tiles of 4 output pixels × 8
 * channels over all (i, j, channel) and the result is copied into the output tensor. On bn-cnn's layers (shard
 * of 64) that is about 1.2–1.4× faster than XNNPACK's Conv2D, which both replace (Conv2DBackpropInput was an
 * XNNPACK Conv2D of dy with the rotated filter; the stock kernel is a scalar loop ~15× slower). 3×3 filters with
 * enough channels go to Winograd instead (./winograd-conv2d-wasm.ts), by the fixed rule of ./conv2d-algorithm.ts.
 *
 * The kernel functions return null for anything else (strides, dilations, NCHW, other dtypes); the caller
 * (./wasm-training-kernels.ts, which registers them) then runs the stock kernel.
 *
 * Deterministic: plain IEEE f32 mul and add in an order that depends only on the shapes, so the same inputs
 * give the same bytes on every call, instance and thread (it differs from XNNPACK's order in the last bits).
 * One module instance per thread, its memory grown to the largest call seen and reused.
 */

interface Exports {
  memory: { buffer: ArrayBuffer };
  prepare(n: number, h: number, w: number, c: number, top: number, left: number, oh: number, ow: number, cout: number, kh: number, kw: number): number;
  rowPtr(b: number, r: number): number;
  rawPtr(): number;
  yPtr(): number;
  pack(mode: number): void;
  compute(): void;
}

export const CONV2D_WASM_URL = new URL('./conv2d.wasm', import.meta.url);

const MODULE = new WasmModule<Exports>(CONV2D_WASM_URL, (message) => new BackendError(`The wasm Conv2D kernel failed: ${message}`));
let instance: Exports | null = null; // one per thread (module-level state is per thread)

/** How the module reads the filter: as it is (Conv2D) or rotated with its channel axes swapped (BackpropInput). */
export type FilterMode = 'forward' | 'backprop-input';

/**
 * The stride-1 correlation y [N, OH, OW, cout] of a [N, H, W, C] placed at (top, left) in a zero-padded
 * [OH + kh − 1, OW + kw − 1] image (negative top/left crop it), with `filter`: [kh, kw, C, cout] ('forward') or
 * [kh, kw, cout, C] rotated 180° ('backprop-input'). Plain Float32Arrays: the kernels' core, also usable without a
 * backend.
 */
export function correlateInto(
  a: Float32Array, aShape: readonly number[], top: number, left: number,
  filter: Float32Array, kh: number, kw: number, mode: FilterMode,
  oh: number, ow: number, cout: number, out: Float32Array,
): void {
  const [n, h, w, c] = aShape;
  const m = (instance ??= MODULE.instantiate());
  if (m.prepare(n, h, w, c, top, left, oh, ow, cout, kh, kw) !== 1) {
    throw new BackendError(`The wasm Conv2D kernel cannot take an input [${aShape}] to [${n},${oh},${ow},${cout}] (out of memory?).`);
  }
  // Views after prepare(): it may grow (and so detach) the module's memory.
  const heap = new Float32Array(m.memory.buffer);
  const hp = oh + kh - 1;
  const wp = ow + kw - 1;
  // The part of a that lands inside the padded image: rows r0..r1, columns c0..c1 (padded coordinates).
  const r0 = Math.max(0, top);
  const r1 = Math.min(hp, top + h);
  const c0 = Math.max(0, left);
  const c1 = Math.min(wp, left + w);
  if (c1 > c0) {
    const len = (c1 - c0) * c;
    for (let b = 0; b < n; b++) {
      for (let r = r0; r < r1; r++) {
        const src = ((b * h + r - top) * w + (c0 - left)) * c;
        heap.set(a.subarray(src, src + len), (m.rowPtr(b, r) >>> 2) + c0 * c);
      }
    }
  }
  heap.set(filter.subarray(0, kh * kw * c * cout), m.rawPtr() >>> 2);
  m.pack(mode === 'forward' ? 0 : 1);
  m.compute();
  const y = m.yPtr() >>> 2;
  out.set(heap.subarray(y, y + n * oh * ow * cout));
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };

function run(
  backend: BackendWasm, a: tf.TensorInfo, top: number, left: number, filter: tf.TensorInfo, mode: FilterMode, outShape: number[],
): tf.TensorInfo {
  const [kh, kw] = filter.shape;
  const out = backend.makeOutput(outShape, 'float32');
  try {
    // Views after the allocation: makeOutput may grow (and so detach) the backend's heap.
    const av = backend.typedArrayFromHeap(a) as Float32Array;
    const fv = backend.typedArrayFromHeap(filter) as Float32Array;
    const ov = backend.typedArrayFromHeap(out) as Float32Array;
    const [, oh, ow, cout] = outShape;
    const algorithm = conv2dAlgorithm(kh, kw, a.shape[3], cout, oh, ow);
    if (algorithm === 'direct') correlateInto(av, a.shape, top, left, fv, kh, kw, mode, oh, ow, cout, ov);
    else winogradCorrelateInto(av, a.shape, top, left, fv, mode, oh, ow, cout, ov, algorithm === 'winograd-f4' ? 4 : 2);
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  }
  return out;
}

/** Conv2D (inputs x, filter) on wasm, or null when the call is not one this kernel takes. */
export function conv2dWasm(args: KernelArgs): tf.TensorInfo | null {
  const { x, filter } = args.inputs;
  const attrs = (args.attrs ?? {}) as Partial<tf.Conv2DAttrs>;
  if (!x || !filter || x.dtype !== 'float32' || filter.dtype !== 'float32' || x.shape.length !== 4 || filter.shape.length !== 4) return null;
  if (!isNhwc(attrs.dataFormat) || !isOnes(attrs.strides) || !isOnes(attrs.dilations)) return null;
  const pad = stride1Padding(attrs.pad, x.shape, filter.shape);
  if (!pad) return null;
  const [n, h, w, cin] = x.shape;
  const [kh, kw, fcin, cout] = filter.shape;
  const oh = h + pad[0] + pad[1] - kh + 1;
  const ow = w + pad[2] + pad[3] - kw + 1;
  if (fcin !== cin || oh < 1 || ow < 1 || n < 1 || cin < 1 || cout < 1) return null;
  return run(args.backend as BackendWasm, x, pad[0], pad[2], filter, 'forward', [n, oh, ow, cout]);
}

/** Conv2DBackpropInput (inputs dy, filter) on wasm, or null when the call is not one this kernel takes. */
export function conv2dBackpropInputWasm(args: KernelArgs): tf.TensorInfo | null {
  const { dy, filter } = args.inputs;
  const attrs = (args.attrs ?? {}) as Partial<tf.Conv2DBackpropInputAttrs>;
  const inputShape = attrs.inputShape as readonly number[] | undefined;
  if (!dy || !filter || dy.dtype !== 'float32' || filter.dtype !== 'float32' || dy.shape.length !== 4 || filter.shape.length !== 4) return null;
  if (!inputShape || inputShape.length !== 4 || !isNhwc(attrs.dataFormat) || !isOnes(attrs.strides)) return null;
  const pad = stride1Padding(attrs.pad, inputShape, filter.shape);
  if (!pad) return null;
  const [n, h, w, cin] = inputShape;
  const [kh, kw, fcin, cout] = filter.shape;
  const [dn, doh, dow, dcout] = dy.shape;
  if (fcin !== cin || dcout !== cout || dn !== n || doh !== h + pad[0] + pad[1] - kh + 1 || dow !== w + pad[2] + pad[3] - kw + 1) return null;
  if (n < 1 || h < 1 || w < 1 || cin < 1 || cout < 1 || doh < 1 || dow < 1) return null;
  return run(args.backend as BackendWasm, dy, kh - 1 - pad[0], kw - 1 - pad[2], filter, 'backprop-input', [n, h, w, cin]);
}
