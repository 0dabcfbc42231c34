/**
 * This machine's arithmetic peak for 128-bit WebAssembly SIMD without FMA, measured the way the kernels run:
 *
 * - clock: a chain of dependent 32-bit integer adds and xors (one cycle each on every x86-64 core), best of many
 *   short runs, so the busiest moments of a shared machine do not count;
 * - theoretical peak: 16 flops per cycle × clock. Zen 4 and Zen 5 cores have two floating-point multiply pipes and
 *   two add pipes; V8 turns f32x4.mul and f32x4.add into one 128-bit vmulps / vaddps each, so a core retires at
 *   most 2 × 4 multiplies and 2 × 4 adds per cycle (FMA would fuse them, but it rounds differently and is not
 *   plain WebAssembly SIMD);
 * - register-tile peak: the project's own 4×8 register tile (src/compute/kernels/assembly/register-tile-4x8.ts,
 *   compiled here with the same flags as the kernels) on operands that stay in the L1 cache: the most any of the
 *   GEMM kernels can reach under V8.
 */
import asc from 'assemblyscript/asc';
import { readFileSync } from 'node:fs';
import { BenchError } from './bench-error.ts';

const TILE_SOURCE = new URL('../src/compute/kernels/assembly/register-tile-4x8.ts', import.meta.url);

const ENTRY = `
import { tile4x8 } from './register-tile-4x8';
export { tile4x8 };
export function setup(): usize {
  if (memory.size() < 2) memory.grow(2);
  return 1024;
}
/** reps × one 4×8 tile over K = 128: the A panel at p (2 KiB), the B panel at p + 2048 (4 KiB), C at p + 8192. */
export function tiles(reps: i32, p: usize): void {
  for (let r = 0; r < reps; r++) tile4x8(p, p + 2048, 128, p + 8192, 32);
}
export function clock(n: i32, y: i32): i32 {
  let x: i32 = y;
  for (let i = 0; i < n; i++) {
    x = x + y; x = x ^ y; x = x + y; x = x ^ y; x = x + y; x = x ^ y; x = x + y; x = x ^ y;
    x = x + y; x = x ^ y; x = x + y; x = x ^ y; x = x + y; x = x ^ y; x = x + y; x = x ^ y;
  }
  return x;
}
`;

interface PeakExports {
  setup(): number;
  tiles(reps: number, p: number): void;
  clock(n: number, y: number): number;
}

export interface SimdPeak {
  /** Best clock seen, GHz. */
  readonly ghz: number;
  /** 16 flops per cycle × ghz: the 128-bit mul + add pipes' limit, GFLOP/s. */
  readonly theoreticalGflops: number;
  /** Best rate of the project's 4×8 register tile on L1-resident operands, GFLOP/s. */
  readonly tileGflops: number;
}

export const FLOPS_PER_CYCLE = 16;

async function compile(): Promise<PeakExports> {
  const result = await asc.compileString(
    { 'peak.ts': ENTRY, 'register-tile-4x8.ts': readFileSync(TILE_SOURCE, 'utf8') },
    { optimizeLevel: 3, runtime: 'stub', noAssert: true, enable: ['simd'] } as never,
  );
  if (result.error || !result.binary) throw new BenchError(`Could not compile the peak loops: ${result.stderr.toString()}`);
  const wasm = (globalThis as unknown as { WebAssembly: { Instance: new (m: object, i: object) => { exports: unknown }; Module: new (b: Uint8Array) => object } }).WebAssembly;
  return new wasm.Instance(new wasm.Module(result.binary), {}).exports as PeakExports;
}

/** Measures the peak in about `seconds` (best of many ~10 ms runs of each loop, interleaved). */
export async function measureSimdPeak(seconds = 2): Promise<SimdPeak> {
  const k = await compile();
  const p = k.setup();
  let ghz = 0;
  let tile = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const n = 1_000_000;
    let t = performance.now();
    k.clock(n, 3);
    ghz = Math.max(ghz, (n * 16) / ((performance.now() - t) / 1000) / 1e9);
    const reps = 5000;
    t = performance.now();
    k.tiles(reps, p);
    tile = Math.max(tile, (reps * 4 * 8 * 128 * 2) / ((performance.now() - t) / 1000) / 1e9);
  }
  return { ghz, theoreticalGflops: FLOPS_PER_CYCLE * ghz, tileGflops: tile };
}
