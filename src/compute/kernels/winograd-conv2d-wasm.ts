import { BackendError } from '../../errors/index.ts';
import { WasmModule } from '../../wasm/wasm-module.ts';
import type { FilterMode } from './conv2d-wasm.ts';

/**
 * 3×3 stride-1 correlations by Winograd's F(2×2, 3×3) or F(4×4, 3×3), in our own WebAssembly SIMD module
 * (./winograd-conv2d.wasm, source ./assembly/winograd-conv2d.ts): the core of Conv2D and Conv2DBackpropInput for
 * 3×3 filters where ./conv2d-algorithm.ts picks Winograd. Same contract as correlateInto in ./conv2d-wasm.ts (an
 * input placed at (top, left) in a zero-padded image, the filter as it is or rotated for the input gradient), 2.25×
 * (m = 2) or 4× (m = 4) fewer multiplications, and rounding that differs from a direct convolution's (the tests
 * state the tolerances). Written by hand for speed and for a fixed order of operations: the same inputs give the
 * same bytes on every machine, thread and call. One module instance per thread, its memory grown to the largest
 * call seen and reused.
 */

interface Exports {
  memory: { buffer: ArrayBuffer };
  prepare(n: number, h: number, w: number, c: number, top: number, left: number, oh: number, ow: number, cout: number, m: number, tb: number, slab: number): number;
  pixelPtr(b: number, r: number, col: number): number;
  paddedHeight(): number;
  paddedWidth(): number;
  rawPtr(): number;
  yPtr(): number;
  pack(mode: number): void;
  compute(): void;
}

export const WINOGRAD_CONV2D_WASM_URL = new URL('./winograd-conv2d.wasm', import.meta.url);

const MODULE = new WasmModule<Exports>(WINOGRAD_CONV2D_WASM_URL, (message) => new BackendError(`The wasm Winograd Conv2D kernel failed: ${message}`));
let instance: Exports | null = null; // one per thread (module-level state is per thread)

/** Output tile size of Winograd's F(m×m, 3×3). */
export type WinogradTile = 2 | 4;

/**
 * Tiles per block and output channels per GEMM pass, from the shape (measured on bench/kernel-bench.ts's shapes).
 * They only order independent work: any choice gives the same bytes.
 */
export function winogradBlocking(m: WinogradTile, c: number, cout: number): { tiles: number; slab: number } {
  const alpha2 = (m + 2) * (m + 2);
  const cp = Math.ceil(c / 4) * 4;
  const cout8 = Math.ceil(cout / 8) * 8;
  // Each block streams all of U (α² · cp · cout8 f32) once: large filters want many tiles per block.
  const uBytes = alpha2 * cp * cout8 * 4;
  const tiles = Math.max(8, Math.min(128, Math.round(uBytes / 65536 / 4) * 4));
  return { tiles, slab: Math.min(cout8, 128) };
}

/**
 * The stride-1 3×3 correlation y [N, OH, OW, cout] of a [N, H, W, C] placed at (top, left) in a zero-padded
 * image, with `filter` [3, 3, C, cout] ('forward') or [3, 3, cout, C] rotated 180° ('backprop-input'), by
 * Winograd F(m×m, 3×3), into `out`.
 */
export function winogradCorrelateInto(
  a: Float32Array, aShape: readonly number[], top: number, left: number,
  filter: Float32Array, mode: FilterMode, oh: number, ow: number, cout: number, out: Float32Array,
  m: WinogradTile, blocking = winogradBlocking(m, aShape[3], cout),
): void {
  const [n, h, w, c] = aShape;
  const k = (instance ??= MODULE.instantiate());
  if (k.prepare(n, h, w, c, top, left, oh, ow, cout, m, blocking.tiles, blocking.slab) !== 1) {
    throw new BackendError(`The wasm Winograd Conv2D kernel cannot take an input [${aShape}] to [${n},${oh},${ow},${cout}] (out of memory?).`);
  }
  // Views after prepare(): it may grow (and so detach) the module's memory.
  const heap = new Float32Array(k.memory.buffer);
  const hp = k.paddedHeight();
  const wp = k.paddedWidth();
  const cp = Math.ceil(c / 4) * 4;
  // The part of a that lands inside the padded image: rows r0..r1, columns c0..c1 (padded coordinates).
  const r0 = Math.max(0, top);
  const r1 = Math.min(hp, top + h);
  const c0 = Math.max(0, left);
  const c1 = Math.min(wp, left + w);
  if (c1 > c0) {
    for (let b = 0; b < n; b++) {
      for (let r = r0; r < r1; r++) {
        const src = ((b * h + r - top) * w + (c0 - left)) * c;
        const dst = k.pixelPtr(b, r, c0) >>> 2;
        if (cp === c) {
          heap.set(a.subarray(src, src + (c1 - c0) * c), dst);
        } else {
          for (let col = 0; col < c1 - c0; col++) heap.set(a.subarray(src + col * c, src + (col + 1) * c), dst + col * cp);
        }
      }
    }
  }
  heap.set(filter.subarray(0, 9 * c * cout), k.rawPtr() >>> 2);
  k.pack(mode === 'forward' ? 0 : 1);
  k.compute();
  const y = k.yPtr() >>> 2;
  out.set(heap.subarray(y, y + n * oh * ow * cout));
}
