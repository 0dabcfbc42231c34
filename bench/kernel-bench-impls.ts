/**
 * The convolution kernels `npm run bench:kernels` compares, each as "prepare for this shape, then call":
 * tfjs-wasm's stock kernels (XNNPACK's Conv2D; the stock Conv2DBackpropInput), the project's direct GEMM kernels,
 * Winograd F(2×2, 3×3) and F(4×4, 3×3), and what the registered wasm kernels run (the rule of
 * src/compute/kernels/conv2d-algorithm.ts, through tfjs). The project's kernels are called on plain Float32Arrays,
 * copies in and out of their module included, as when tfjs calls them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { conv2dAlgorithm } from '../src/compute/kernels/conv2d-algorithm.ts';
import { conv2dBackpropFilterInto } from '../src/compute/kernels/conv2d-backprop-filter-wasm.ts';
import { correlateInto } from '../src/compute/kernels/conv2d-wasm.ts';
import { winogradBackpropFilterInto } from '../src/compute/kernels/winograd-conv2d-backprop-filter-wasm.ts';
import { winogradCorrelateInto } from '../src/compute/kernels/winograd-conv2d-wasm.ts';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../src/compute/kernels/wasm-training-kernels.ts';
import type { Direction } from './kernel-bench-torch.ts';
import { type ConvShape, outputShape, padding } from './kernel-bench-shapes.ts';

export const DIRECTIONS: readonly Direction[] = ['forward', 'input-grad', 'filter-grad'];

/** One shape's operands: x, the filter, dy, and outputs for each direction. */
export interface ShapeData {
  readonly x: Float32Array;
  readonly filter: Float32Array;
  readonly dy: Float32Array;
  readonly y: Float32Array;
  readonly dx: Float32Array;
  readonly dw: Float32Array;
}

export interface KernelImpl {
  readonly name: string;
  readonly direction: Direction;
  /** A function doing one call on this shape's data, or null when the kernel does not take the shape. */
  prepare(shape: ConvShape, data: ShapeData): { call: () => void; dispose?: () => void } | null;
}

/** Stock tfjs-wasm Conv2DBackpropInput is a scalar loop: only shapes up to this many flops are timed. */
export const STOCK_INPUT_GRAD_MAX_FLOPS = 3e9;

function uniform(size: number, seed: number, scale: number, relu = false): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = (s / 4294967296) * 2 - 1;
    out[i] = (relu ? Math.max(0, v) : v) * scale;
  }
  return out;
}

/** Activations after batch norm + ReLU (half zeros), He-scaled filters, small gradients. */
export function shapeData(s: ConvShape): ShapeData {
  const [n, oh, ow, cout] = outputShape(s);
  return {
    x: uniform(s.n * s.h * s.w * s.cin, 1, 1, true),
    filter: uniform(s.k * s.k * s.cin * s.cout, 2, Math.sqrt(6 / (s.k * s.k * s.cin))),
    dy: uniform(n * oh * ow * cout, 3, 1e-3),
    y: new Float32Array(n * oh * ow * cout),
    dx: new Float32Array(s.n * s.h * s.w * s.cin),
    dw: new Float32Array(s.k * s.k * s.cin * s.cout),
  };
}


let stock: { conv2d: tf.KernelFunc; inputGrad: tf.KernelFunc } | null = null;

/** tfjs-wasm's own Conv2D and Conv2DBackpropInput (the wasm backend must be running, with our kernels registered). */
function stockKernels(): { conv2d: tf.KernelFunc; inputGrad: tf.KernelFunc } {
  if (stock) return stock;
  unregisterWasmTrainingKernels();
  stock = { conv2d: tf.getKernel('Conv2D', 'wasm')!.kernelFunc, inputGrad: tf.getKernel('Conv2DBackpropInput', 'wasm')!.kernelFunc };
  registerWasmTrainingKernels();
  return stock;
}

/** Calls a kernel function on tensors made once; disposes each output. */
function viaTfjs(kernel: () => tf.KernelFunc, inputs: () => Record<string, tf.Tensor>, attrs: tf.NamedAttrMap) {
  const tensors = inputs();
  const backend = tf.backend();
  return {
    call: () => {
      const out = kernel()({ inputs: tensors, backend, attrs }) as tf.TensorInfo;
      backend.disposeData(out.dataId);
    },
    dispose: () => tf.dispose(Object.values(tensors)),
  };
}

const registered = (name: string) => () => tf.getKernel(name, 'wasm')!.kernelFunc;

/** Every kernel the bench knows, per direction. */
export function kernelImpls(): KernelImpl[] {
  const winogradOk = (s: ConvShape) => s.k === 3;
  return [
    {
      name: 'XNNPACK', direction: 'forward',
      prepare: (s, d) => viaTfjs(() => stockKernels().conv2d, () => ({ x: tf.tensor4d(d.x, [s.n, s.h, s.w, s.cin]), filter: tf.tensor4d(d.filter, [s.k, s.k, s.cin, s.cout]) }),
        { strides: 1, pad: s.pad, dataFormat: 'NHWC', dilations: 1 }),
    },
    {
      name: 'direct', direction: 'forward',
      prepare: (s, d) => {
        const { top, left } = padding(s);
        const [, oh, ow] = outputShape(s);
        return { call: () => correlateInto(d.x, [s.n, s.h, s.w, s.cin], top, left, d.filter, s.k, s.k, 'forward', oh, ow, s.cout, d.y) };
      },
    },
    ...([2, 4] as const).map((m): KernelImpl => ({
      name: `F(${m}×${m})`, direction: 'forward',
      prepare: (s, d) => {
        if (!winogradOk(s)) return null;
        const { top, left } = padding(s);
        const [, oh, ow] = outputShape(s);
        return { call: () => winogradCorrelateInto(d.x, [s.n, s.h, s.w, s.cin], top, left, d.filter, 'forward', oh, ow, s.cout, d.y, m) };
      },
    })),
    {
      name: 'registered', direction: 'forward',
      prepare: (s, d) => viaTfjs(registered('Conv2D'), () => ({ x: tf.tensor4d(d.x, [s.n, s.h, s.w, s.cin]), filter: tf.tensor4d(d.filter, [s.k, s.k, s.cin, s.cout]) }),
        { strides: 1, pad: s.pad, dataFormat: 'NHWC', dilations: 1 }),
    },

    {
      name: 'stock', direction: 'input-grad',
      prepare: (s, d) => {
        if (2 * s.n * s.h * s.w * s.cin * s.cout * s.k * s.k > STOCK_INPUT_GRAD_MAX_FLOPS) return null;
        return viaTfjs(() => stockKernels().inputGrad, () => ({ dy: tf.tensor4d(d.dy, outputShape(s)), filter: tf.tensor4d(d.filter, [s.k, s.k, s.cin, s.cout]) }),
          { strides: 1, pad: s.pad, dataFormat: 'NHWC', dilations: 1, inputShape: [s.n, s.h, s.w, s.cin] });
      },
    },
    {
      name: 'direct', direction: 'input-grad',
      prepare: (s, d) => {
        const { top, left } = padding(s);
        const os = outputShape(s);
        return { call: () => correlateInto(d.dy, os, s.k - 1 - top, s.k - 1 - left, d.filter, s.k, s.k, 'backprop-input', s.h, s.w, s.cin, d.dx) };
      },
    },
    ...([2, 4] as const).map((m): KernelImpl => ({
      name: `F(${m}×${m})`, direction: 'input-grad',
      prepare: (s, d) => {
        if (!winogradOk(s)) return null;
        const { top, left } = padding(s);
        const os = outputShape(s);
        return { call: () => winogradCorrelateInto(d.dy, os, s.k - 1 - top, s.k - 1 - left, d.filter, 'backprop-input', s.h, s.w, s.cin, d.dx, m) };
      },
    })),
    {
      name: 'registered', direction: 'input-grad',
      prepare: (s, d) => viaTfjs(registered('Conv2DBackpropInput'), () => ({ dy: tf.tensor4d(d.dy, outputShape(s)), filter: tf.tensor4d(d.filter, [s.k, s.k, s.cin, s.cout]) }),
        { strides: 1, pad: s.pad, dataFormat: 'NHWC', dilations: 1, inputShape: [s.n, s.h, s.w, s.cin] }),
    },

    {
      name: 'direct', direction: 'filter-grad',
      prepare: (s, d) => {
        const { top, left } = padding(s);
        return { call: () => conv2dBackpropFilterInto(d.x, [s.n, s.h, s.w, s.cin], d.dy, outputShape(s), s.k, s.k, top, left, d.dw) };
      },
    },
    ...([2, 4] as const).map((m): KernelImpl => ({
      name: `F(${m}×${m})`, direction: 'filter-grad',
      prepare: (s, d) => {
        if (!winogradOk(s)) return null;
        const { top, left } = padding(s);
        return { call: () => winogradBackpropFilterInto(d.x, [s.n, s.h, s.w, s.cin], d.dy, outputShape(s), top, left, d.dw, m) };
      },
    })),
    {
      name: 'registered', direction: 'filter-grad',
      prepare: (s, d) => viaTfjs(registered('Conv2DBackpropFilter'), () => ({ x: tf.tensor4d(d.x, [s.n, s.h, s.w, s.cin]), dy: tf.tensor4d(d.dy, outputShape(s)) }),
        { strides: 1, pad: s.pad, dataFormat: 'NHWC', dilations: 1, filterShape: [s.k, s.k, s.cin, s.cout] }),
    },
  ];
}

/** The algorithm the registered kernels pick for this shape and direction. */
export function registeredAlgorithm(s: ConvShape, direction: Direction): string {
  const [, oh, ow] = outputShape(s);
  const a = direction === 'input-grad' ? conv2dAlgorithm(s.k, s.k, s.cout, s.cin, s.h, s.w) : conv2dAlgorithm(s.k, s.k, s.cin, s.cout, oh, ow);
  return a === 'winograd-f4' ? 'F(4×4)' : a === 'winograd-f2' ? 'F(2×2)' : 'direct';
}

