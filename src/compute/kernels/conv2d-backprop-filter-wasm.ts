import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../../errors/index.ts';

/**
 * Conv2DBackpropFilter for the tfjs 'wasm' backend, which ships without one (training a conv net on wasm
 * otherwise fails at the first backward pass with "Kernel 'Conv2DBackpropFilter' not registered").
 *
 * Supported: NHWC, stride 1, dilation 1, any zero padding ('valid', 'same', numeric or explicit) — what the
 * project's models use. Anything else throws a BackendError naming the attribute.
 *
 * For x [N, H, W, Cin] (zero-padded by top/left) and dy [N, OH, OW, Cout] the filter gradient is
 *   dW[i, j, ci, co] = Σ_{n, oh, ow} xpad[n, oh + i, ow + j, ci] · dy[n, oh, ow, co],
 * which is itself a convolution with the batch as the channel axis and the forward pass's spatial padding:
 *   dW = transpose(conv2d(transpose(x, [3,1,2,0]), transpose(dy, [1,2,0,3]), pad), [1,2,0,3]).
 * All three steps run through the wasm backend's own Transpose and Conv2D kernels (XNNPACK), on TensorInfos
 * that never reach the engine, so the intermediates are freed here and nothing is tracked or leaked.
 * Single-threaded XNNPACK gives the same bytes for the same inputs every time.
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

function isOnes(v: number | readonly number[] | undefined): boolean {
  if (v === undefined) return true;
  if (typeof v === 'number') return v === 1;
  return v.every((s) => s === 1);
}

/** Spatial zero padding [top, bottom, left, right] of a stride-1 convolution, or null when `pad` is not one. */
function padding(pad: unknown, xShape: readonly number[], filterShape: readonly number[] | undefined): number[] | null {
  if (pad === 'valid' || pad === 'VALID') return [0, 0, 0, 0];
  if (typeof pad === 'number' && Number.isInteger(pad) && pad >= 0) return [pad, pad, pad, pad];
  if (Array.isArray(pad)) {
    // Explicit padding [[0,0],[top,bottom],[left,right],[0,0]].
    const flat = pad.flat(2) as unknown[];
    if (flat.length !== 8 || !flat.every((p) => Number.isInteger(p) && (p as number) >= 0)) return null;
    const [n0, n1, top, bottom, left, right, c0, c1] = flat as number[];
    return n0 === 0 && n1 === 0 && c0 === 0 && c1 === 0 ? [top, bottom, left, right] : null;
  }
  if ((pad === 'same' || pad === 'SAME') && filterShape && filterShape.length === 4 && xShape.length === 4) {
    // Stride 1: the output keeps the input's size; the extra row/column (even kernels) goes to the bottom/right.
    const [kh, kw] = filterShape;
    return [Math.floor((kh - 1) / 2), Math.ceil((kh - 1) / 2), Math.floor((kw - 1) / 2), Math.ceil((kw - 1) / 2)];
  }
  return null;
}

function checkAttrs(attrs: Attrs, xShape: readonly number[], dyShape: readonly number[]): number[] {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') unsupported(`dataFormat '${attrs.dataFormat}'`);
  if (!isOnes(attrs.strides)) unsupported(`strides ${JSON.stringify(attrs.strides)}`);
  if (!isOnes(attrs.dilations)) unsupported(`dilations ${JSON.stringify(attrs.dilations)}`);
  const pad = padding(attrs.pad, xShape, attrs.filterShape);
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

function wasmKernel(name: string): tf.KernelFunc {
  const config = tf.getKernel(name, 'wasm');
  if (!config) throw new BackendError(`The tfjs wasm backend has no '${name}' kernel; is @tensorflow/tfjs-backend-wasm 4.x installed?`);
  return config.kernelFunc;
}

function conv2dBackpropFilterWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs;
  if (!x || !dy) throw new BackendError('Conv2DBackpropFilter (wasm) needs inputs x and dy.');
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') unsupported(`dtypes ${x.dtype}/${dy.dtype} (float32 only)`);
  const [top, bottom, left, right] = checkAttrs((args.attrs ?? {}) as Attrs, x.shape, dy.shape);

  const transpose = wasmKernel('Transpose');
  const conv2d = wasmKernel('Conv2D');
  const temps: tf.TensorInfo[] = [];
  try {
    // [N,H,W,Cin] → [Cin,H,W,N]: channels become the batch, the batch becomes the reduced channel axis.
    const xT = transpose({ inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } }) as tf.TensorInfo;
    temps.push(xT);
    // [N,OH,OW,Cout] → [OH,OW,N,Cout]: dy is the filter.
    const dyT = transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo;
    temps.push(dyT);
    // → [Cin, kh, kw, Cout]
    const g = conv2d({
      inputs: { x: xT, filter: dyT },
      backend,
      attrs: { strides: [1, 1], pad: [[0, 0], [top, bottom], [left, right], [0, 0]], dataFormat: 'NHWC', dilations: [1, 1] },
    }) as tf.TensorInfo;
    temps.push(g);
    // → [kh, kw, Cin, Cout], the one output the engine takes over.
    return transpose({ inputs: { x: g }, backend, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo;
  } finally {
    // Disposing the conv's filter (dyT) also drops XNNPACK's cached operator for it.
    for (const t of temps) backend.disposeData(t.dataId);
  }
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
