import { BackendError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';

/**
 * The gradient of a 2×2, stride-2, unpadded max-pool (NHWC, float32) in our own WebAssembly SIMD module
 * (./max-pool-grad-2x2.wasm, source ./assembly/max-pool-grad-2x2.ts), for MaxPoolGrad in ./wasm-training-kernels.ts:
 * each window's gradient goes to its first strict maximum in row-major order (the cpu backend's rule), four
 * channels at a time. Written by hand for speed; bit for bit the plain JavaScript loop it replaced. One module
 * instance per thread, its memory grown to the largest call seen and reused.
 */

interface Exports {
  memory: { buffer: ArrayBuffer };
  prepare(n: number, h: number, w: number, c: number, oh: number, ow: number): number;
  xPtr(): number;
  dyPtr(): number;
  dxPtr(): number;
  compute(): void;
}

export const MAX_POOL_GRAD_2X2_WASM_URL = new URL('./max-pool-grad-2x2.wasm', import.meta.url);

const MODULE = new WasmModule<Exports>(MAX_POOL_GRAD_2X2_WASM_URL, (message) => new BackendError(`The wasm MaxPoolGrad kernel failed: ${message}`));
let instance: Exports | null = null; // one per thread

/** dx [n, h, w, c] of the 2×2/2 max-pool of x [n, h, w, c] given dy [n, oh, ow, c] (2·oh ≤ h, 2·ow ≤ w), into `dx`. */
export function maxPoolGrad2x2Into(x: Float32Array, xShape: readonly number[], dy: Float32Array, oh: number, ow: number, dx: Float32Array): void {
  const [n, h, w, c] = xShape;
  const k = (instance ??= MODULE.instantiate());
  if (k.prepare(n, h, w, c, oh, ow) !== 1) {
    throw new BackendError(`The wasm MaxPoolGrad kernel cannot take an input [${xShape}] pooled to ${oh}×${ow} (out of memory?).`);
  }
  // Views after prepare(): it may grow (and so detach) the module's memory.
  const heap = new Float32Array(k.memory.buffer);
  heap.set(x.subarray(0, n * h * w * c), k.xPtr() >>> 2);
  heap.set(dy.subarray(0, n * oh * ow * c), k.dyPtr() >>> 2);
  k.compute();
  const at = k.dxPtr() >>> 2;
  dx.set(heap.subarray(at, at + n * h * w * c));
}
