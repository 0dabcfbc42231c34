import { BackendError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';
import type { WinogradTile } from './winograd-conv2d-wasm.ts';

/**
 * The filter gradient of a 3×3 stride-1 convolution by Winograd's F(2×2, 3×3) or F(4×4, 3×3), in our own
 * WebAssembly SIMD module (./winograd-conv2d-backprop-filter.wasm, source
 * ./assembly/winograd-conv2d-backprop-filter.ts): the core of Conv2DBackpropFilter where ./conv2d-algorithm.ts picks
 * Winograd. Same contract as conv2dBackpropFilterInto in ./conv2d-backprop-filter-wasm.ts for kh = kw = 3: x is
 * transformed tile by tile (Bᵀ d B), dy too (A dY Aᵀ), their products summed over tiles in α² reduction GEMMs and
 * transformed back (Gᵀ S G). Written by hand for speed and for a fixed order of operations: the same inputs give the
 * same bytes on every machine, thread and call; the rounding differs from a direct sum's (the tests state the
 * tolerances). One module instance per thread, its memory grown to the largest call seen and reused.
 */

interface Exports {
  memory: { buffer: ArrayBuffer };
  prepare(n: number, h: number, w: number, cin: number, oh: number, ow: number, cout: number, top: number, left: number, m: number, tb: number): number;
  xPixelPtr(b: number, r: number, col: number): number;
  dyPixelPtr(b: number, r: number, col: number): number;
  dwPtr(): number;
  compute(): void;
}

export const WINOGRAD_CONV2D_BACKPROP_FILTER_WASM_URL = new URL('./winograd-conv2d-backprop-filter.wasm', import.meta.url);

const MODULE = new WasmModule<Exports>(
  WINOGRAD_CONV2D_BACKPROP_FILTER_WASM_URL,
  (message) => new BackendError(`The wasm Winograd Conv2DBackpropFilter kernel failed: ${message}`),
);
let instance: Exports | null = null; // one per thread (module-level state is per thread)

/** Tiles per block (measured on bench/kernel-bench.ts's shapes). Any choice gives the same bytes. */
export function winogradFilterGradBlocking(m: WinogradTile, cin: number, cout: number): number {
  void m;
  void cin;
  void cout;
  return 64;
}

/** Copies [n, h, w, c] pixels into the module, pixel (b, r, col) at ptr(b, r + top, col + left), c f32 each. */
function copyPixels(
  heap: Float32Array, a: Float32Array, n: number, h: number, w: number, c: number, top: number, left: number,
  packed: boolean, ptr: (b: number, r: number, col: number) => number, stride: number,
): void {
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < h; r++) {
      const src = (b * h + r) * w * c;
      const dst = ptr(b, r + top, left) >>> 2;
      if (packed) heap.set(a.subarray(src, src + w * c), dst);
      else for (let col = 0; col < w; col++) heap.set(a.subarray(src + col * c, src + (col + 1) * c), dst + col * stride);
    }
  }
}

/**
 * dW [3, 3, Cin, Cout] of x [N, H, W, Cin] and dy [N, OH, OW, Cout] with zero padding top/left (stride 1), by
 * Winograd F(m×m, 3×3), into `out`.
 */
export function winogradBackpropFilterInto(
  x: Float32Array, xShape: readonly number[], dy: Float32Array, dyShape: readonly number[],
  top: number, left: number, out: Float32Array, m: WinogradTile, tiles = winogradFilterGradBlocking(m, xShape[3], dyShape[3]),
): void {
  const [n, h, w, cin] = xShape;
  const [, oh, ow, cout] = dyShape;
  const k = (instance ??= MODULE.instantiate());
  if (k.prepare(n, h, w, cin, oh, ow, cout, top, left, m, tiles) !== 1) {
    throw new BackendError(`The wasm Winograd Conv2DBackpropFilter kernel cannot take x [${xShape}], dy [${dyShape}] (out of memory?).`);
  }
  // Views after prepare(): it may grow (and so detach) the module's memory.
  const heap = new Float32Array(k.memory.buffer);
  const cp = Math.ceil(cin / 4) * 4;
  const co4 = Math.ceil(cout / 4) * 4;
  copyPixels(heap, x, n, h, w, cin, top, left, cp === cin, (b, r, col) => k.xPixelPtr(b, r, col), cp);
  if (co4 === cout && ow % m === 0 && oh % m === 0) {
    heap.set(dy.subarray(0, n * oh * ow * cout), k.dyPixelPtr(0, 0, 0) >>> 2); // whole tiles: DYPAD is dy as it is
  } else {
    copyPixels(heap, dy, n, oh, ow, cout, 0, 0, co4 === cout, (b, r, col) => k.dyPixelPtr(b, r, col), co4);
  }
  k.compute();
  const dw = k.dwPtr() >>> 2;
  out.set(heap.subarray(dw, dw + 9 * cin * cout));
}
