// 3×3 stride-1 correlations by Winograd's F(2×2, 3×3) or F(4×4, 3×3) in WebAssembly SIMD (AssemblyScript; built
// by `npm run build:wasm:winograd-conv2d`), for Conv2D and Conv2DBackpropInput in ../winograd-conv2d-wasm.ts.
// Written by hand because it is 2–3× faster than any direct convolution in 128-bit SIMD (it multiplies 2.25× or
// 4× less) and because its order of operations must be fixed by the shapes alone (determinism, below).
//
// Like ./conv2d.ts it computes y[n, oh, ow, co] = Σ_{i, j < 3, c} apad[n, oh + i, ow + j, c] · F[i, j, c, co] of
// an input a [N, H, W, C] placed at (TOP, LEFT) in a zero-padded image, with F the filter W [3, 3, C, COUT]
// itself (Conv2D, pack mode 0) or W [3, 3, COUT, C] rotated by 180° with its channel axes swapped (pack mode 1:
// Conv2DBackpropInput, a = dy).
//
// The output is cut into m×m tiles (m = 2 or 4; TH × TW per image, the last row and column of tiles cut off at OH,
// OW), each read from an α×α input tile (α = m + 2). With V = Bᵀ d B of each input tile and U = G g Gᵀ of each
// filter, the α² products U[ξ] ⊙ V[ξ] summed over c are, for each ξ, a GEMM
//   M[ξ][tile, co] = Σ_c V[ξ][tile, c] · U[ξ][c, co],
// and y's tile is Aᵀ M A (./winograd-f2x2-3x3.ts, ./winograd-f4x4-3x3.ts). Tiles go TB at a time: their V
// (α² × TB × CP) is transformed into a buffer that stays in cache, the α² GEMMs run in register tiles of 4 tiles ×
// 8 output channels (./register-tile-4x8.ts) over panels of U, SLAB output channels at a time, and the slab's
// outputs are transformed back into Y.
//
// Memory (laid out by prepare(), grown only when a call needs more than any call before, and reused):
//   APAD (N·HP·WP·CP f32, HP = TH·m + 2, WP = TW·m + 2, CP = C rounded up to 4), Y (N·OH·OW·COUT f32),
//   RAW (9·C·COUT f32, the filter as given), U (α²·CP·COUT8 f32, panels of 8 output channels), V (α²·TB·CP f32,
//   panels of 4 tiles: [ξ][tile / 4][c][4]),
//   MB (α²·TB·SLAB f32), scratch; each 16-byte aligned, the ξ planes of U, V and MB a cache line apart.
// The host calls prepare(), copies a's pixels into APAD (pixelPtr; prepare zeroed the rest), the filter into RAW,
// calls pack(mode) and compute(), and reads Y.
//
// Deterministic: plain IEEE f32 mul and add (no FMA, no relaxed SIMD); every output is the same fixed sequence of
// operations on the same values whatever TB and SLAB are (they only order independent work), so the bytes depend
// on the inputs and m alone. Winograd rounds differently from a direct convolution (see the tests' tolerances).

import * as F2 from './winograd-f2x2-3x3';
import * as F4 from './winograd-f4x4-3x3';
import { tile4x8 } from './register-tile-4x8';

let base: usize = 0;
let capacity: usize = 0;
let aPtr_: usize = 0;
let yPtr_: usize = 0;
let rawPtr_: usize = 0;
let uPtr_: usize = 0;
let vPtr_: usize = 0;
let mbPtr_: usize = 0;
let gPtr_: usize = 0; // 9 vectors: one gathered 3×3 filter
let tilesPtr_: usize = 0; // four tiles' transformed inputs (4 × 36 vectors)
let srcPtr_: usize = 0; // where those four tiles start in APAD
let tmpPtr_: usize = 0; // transform scratch

let N: i32 = 0;
let C: i32 = 0;
let CP: i32 = 0;
let OH: i32 = 0;
let OW: i32 = 0;
let COUT: i32 = 0;
let COUT8: i32 = 0;
let M: i32 = 0;
let A2: i32 = 0;
let TH: i32 = 0;
let TW: i32 = 0;
let HP: i32 = 0;
let WP: i32 = 0;
let TB: i32 = 0;
let SLAB: i32 = 0;

// Bytes added to the distance between two positions ξ of U, V and MB: with power-of-two distances the 36 vectors a
// tile transform reads or writes would all fall into one set of the L1 cache.
const PAD: usize = 64;

function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

/**
 * Lays memory out for one call: a [n, h, w, c] at (top, left) of each padded image, an output [n, oh, ow, cout],
 * tiles of m × m (2 or 4), tb tiles per block (rounded up to 4), slab output channels per pass (rounded up to 8).
 * Zeroes what a does not cover in APAD. Returns 1, or 0 when a dimension is out of range or memory cannot grow.
 */
export function prepare(
  n: i32, h: i32, w: i32, c: i32, top: i32, left: i32, oh: i32, ow: i32, cout: i32, m: i32, tb: i32, slab: i32,
): i32 {
  if (n < 1 || h < 1 || w < 1 || c < 1 || oh < 1 || ow < 1 || cout < 1 || (m != 2 && m != 4) || tb < 1 || slab < 1) return 0;
  const alpha = m + 2;
  const cp = (c + 3) & ~3;
  const cout8 = (cout + 7) & ~7;
  const th = (oh + m - 1) / m;
  const tw = (ow + m - 1) / m;
  const hp = th * m + 2;
  const wp = tw * m + 2;
  const tb4 = (tb + 3) & ~3;
  const slab8 = min(cout8, (slab + 7) & ~7);
  const a2 = <usize>(alpha * alpha);
  const aBytes = align16(<usize>n * <usize>hp * <usize>wp * <usize>cp * 4);
  const yBytes = align16(<usize>n * <usize>oh * <usize>ow * <usize>cout * 4);
  const rawBytes = align16(<usize>9 * <usize>c * <usize>cout * 4);
  const uBytes = a2 * (<usize>cp * <usize>cout8 * 4 + PAD);
  const vBytes = a2 * (<usize>tb4 * <usize>cp * 4 + PAD);
  const mbBytes = a2 * (<usize>tb4 * <usize>slab8 * 4 + PAD);
  const need = aBytes + yBytes + rawBytes + uBytes + vBytes + mbBytes + 144 + 2304 + 16 + 1024;
  if (base == 0) base = align16(__heap_base);
  if (need > capacity) {
    const end = base + need;
    const have = <usize>memory.size() << 16;
    if (end > have && memory.grow(<i32>((end - have + 0xffff) >>> 16)) < 0) return 0;
    capacity = need;
  }
  aPtr_ = base;
  yPtr_ = aPtr_ + aBytes;
  rawPtr_ = yPtr_ + yBytes;
  uPtr_ = rawPtr_ + rawBytes;
  vPtr_ = uPtr_ + uBytes;
  mbPtr_ = vPtr_ + vBytes;
  gPtr_ = mbPtr_ + mbBytes;
  tilesPtr_ = gPtr_ + 144;
  srcPtr_ = tilesPtr_ + 2304;
  tmpPtr_ = srcPtr_ + 16;
  N = n; C = c; CP = cp; OH = oh; OW = ow; COUT = cout; COUT8 = cout8; M = m; A2 = <i32>a2;
  TH = th; TW = tw; HP = hp; WP = wp; TB = tb4; SLAB = slab8;
  const pixel = <usize>cp * 4;
  const row = <usize>wp * pixel;
  if (cp != c) {
    memory.fill(aPtr_, 0, <usize>n * <usize>hp * row); // channel lanes c..cp must be zero too
    return 1;
  }
  const r0 = min(hp, max(0, top));
  const r1 = max(r0, min(hp, top + h));
  const c0 = min(wp, max(0, left));
  const c1 = max(c0, min(wp, left + w));
  for (let b = 0; b < n; b++) {
    const img = aPtr_ + <usize>b * <usize>hp * row;
    if (r0 > 0) memory.fill(img, 0, <usize>r0 * row);
    if (r1 < hp) memory.fill(img + <usize>r1 * row, 0, <usize>(hp - r1) * row);
    for (let r = r0; r < r1; r++) {
      const p = img + <usize>r * row;
      if (c0 > 0) memory.fill(p, 0, <usize>c0 * pixel);
      if (c1 < wp) memory.fill(p + <usize>c1 * pixel, 0, <usize>(wp - c1) * pixel);
    }
  }
  return 1;
}

/** Where padded pixel (r, col) of image b starts in APAD (CP f32 per pixel; 0 ≤ r < HP, 0 ≤ col < WP). */
export function pixelPtr(b: i32, r: i32, col: i32): usize {
  return aPtr_ + ((<usize>b * <usize>HP + <usize>r) * <usize>WP + <usize>col) * <usize>CP * 4;
}
export function paddedHeight(): i32 { return HP; }
export function paddedWidth(): i32 { return WP; }
export function rawPtr(): usize { return rawPtr_; }
export function yPtr(): usize { return yPtr_; }

/**
 * U from RAW: U[ξ] = G F[·, ·, c, co] Gᵀ, panel p (output channels 8p..8p + 7) of ξ at byte ξ·us + (p·CP + c)·32,
 * zero for c ≥ C and co ≥ COUT. Mode 0: RAW is F [3, 3, C, COUT]. Mode 1: RAW is W [3, 3, COUT, C] and
 * F[i, j, c, co] = W[2 − i, 2 − j, co, c].
 */
export function pack(mode: i32): void {
  const P = COUT8 >> 3;
  // Zero what no filter fills: the lanes past COUT of the last panel, the rows c ≥ C.
  const ds = <usize>P * <usize>CP * 32 + PAD; // bytes from one ξ to the next
  if (CP != C || COUT8 != COUT) memory.fill(uPtr_, 0, <usize>A2 * ds);
  // c innermost: consecutive filters go to consecutive rows of each ξ's panel.
  for (let co4 = 0; co4 < COUT; co4 += 4) {
    const lanes = min(4, COUT - co4);
    for (let c = 0; c < C; c++) {
      for (let k = 0; k < 9; k++) {
        const dst = gPtr_ + (<usize>k << 4);
        if (mode == 0 && lanes == 4) {
          v128.store(dst, v128.load(rawPtr_ + ((<usize>k * <usize>C + <usize>c) * <usize>COUT + <usize>co4) * 4));
          continue;
        }
        for (let l = 0; l < 4; l++) {
          let v: f32 = 0;
          if (l < lanes) {
            const co = co4 + l;
            const src = mode == 0
              ? (<usize>k * <usize>C + <usize>c) * <usize>COUT + <usize>co
              : (<usize>(8 - k) * <usize>COUT + <usize>co) * <usize>C + <usize>c;
            v = load<f32>(rawPtr_ + src * 4);
          }
          store<f32>(dst + (<usize>l << 2), v);
        }
      }
      const dst = uPtr_ + ((<usize>(co4 >> 3) * <usize>CP + <usize>c) * 8 + <usize>(co4 & 7)) * 4;
      if (M == 4) F4.filterTile(gPtr_, dst, ds, tmpPtr_);
      else F2.filterTile(gPtr_, dst, ds, tmpPtr_);
    }
  }
}

/** Y from APAD and U as laid out by the last prepare() and pack(). */
export function compute(): void {
  const P = COUT8 >> 3;
  const perImage = TH * TW;
  const T = N * perImage;
  const pixel = <usize>CP * 4;
  const aRow = <usize>WP * pixel;
  const vs = <usize>TB * <usize>CP * 4 + PAD; // bytes from one ξ to the next in V
  const ms = <usize>TB * <usize>SLAB * 4 + PAD; // and in MB
  const us = <usize>P * <usize>CP * 32 + PAD; // and in U
  const yPixel = <usize>COUT * 4;
  const yRow = <usize>OW * yPixel;
  for (let t0 = 0; t0 < T; t0 += TB) {
    const nb = min(TB, T - t0);
    // V of the block's tiles, four at a time: each tile's α² vectors of 4 channels into the scratch, then
    // transposed into V's packed panels (4 tiles side by side per channel, what the register tile splats).
    for (let q = 0; q < nb; q += 4) {
      const g = min(4, nb - q);
      const panel = vPtr_ + <usize>(q >> 2) * <usize>CP * 16;
      for (let j = 0; j < g; j++) {
        const t = t0 + q + j;
        const n = t / perImage;
        const ty = (t % perImage) / TW;
        const tx = t % TW;
        store<usize>(srcPtr_ + (<usize>j << 2), aPtr_ + (<usize>n * <usize>HP + <usize>(ty * M)) * aRow + <usize>(tx * M) * pixel);
      }
      for (let c4: usize = 0; c4 < <usize>CP; c4 += 4) {
        for (let j = 0; j < g; j++) {
          const src = load<usize>(srcPtr_ + (<usize>j << 2)) + c4 * 4;
          const dst = tilesPtr_ + <usize>j * 576;
          if (M == 4) F4.inputTile(src, aRow, pixel, dst, 16, tmpPtr_);
          else F2.inputTile(src, aRow, pixel, dst, 16, tmpPtr_);
        }
        // Lanes of tiles past nb hold stale values: they only reach rows of MB that are never read.
        const dst = panel + c4 * 16;
        for (let xi: usize = 0; xi < <usize>A2; xi++) {
          const r0 = v128.load(tilesPtr_ + xi * 16);
          const r1 = v128.load(tilesPtr_ + 576 + xi * 16);
          const r2 = v128.load(tilesPtr_ + 1152 + xi * 16);
          const r3 = v128.load(tilesPtr_ + 1728 + xi * 16);
          const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
          const t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
          const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
          const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
          const d = dst + xi * vs;
          v128.store(d, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
          v128.store(d, i32x4.shuffle(t0, t1, 2, 3, 6, 7), 16);
          v128.store(d, i32x4.shuffle(t2, t3, 0, 1, 4, 5), 32);
          v128.store(d, i32x4.shuffle(t2, t3, 2, 3, 6, 7), 48);
        }
      }
    }
    for (let s0 = 0; s0 < COUT8; s0 += SLAB) {
      const sw = min(SLAB, COUT8 - s0);
      // The α² GEMMs of the slab: MB[ξ][q, co − s0] = Σ_c V[ξ][q, c] · U[ξ][c, co].
      for (let xi = 0; xi < A2; xi++) {
        const v = vPtr_ + <usize>xi * vs;
        const mb = mbPtr_ + <usize>xi * ms;
        for (let p = s0 >> 3; p < (s0 + sw) >> 3; p++) {
          const panel = uPtr_ + <usize>xi * us + <usize>p * <usize>CP * 32;
          const out = mb + <usize>(p * 8 - s0) * 4;
          for (let q = 0; q < nb; q += 4) {
            tile4x8(v + <usize>(q >> 2) * <usize>CP * 16, panel, CP, out + <usize>q * <usize>SLAB * 4, <usize>SLAB * 4);
          }
        }
      }
      // Aᵀ M A of each tile into Y, the slab's channels.
      const cEnd = min(COUT, s0 + sw);
      for (let q = 0; q < nb; q++) {
        const t = t0 + q;
        const n = t / perImage;
        const ty = (t % perImage) / TW;
        const tx = t % TW;
        const rows = min(M, OH - ty * M);
        const cols = min(M, OW - tx * M);
        const dst = yPtr_ + (<usize>n * <usize>OH + <usize>(ty * M)) * yRow + <usize>(tx * M) * yPixel;
        const src = mbPtr_ + <usize>q * <usize>SLAB * 4;
        for (let co = s0; co < cEnd; co += 4) {
          const lanes = min(4, COUT - co);
          if (M == 4) F4.outputTile(src + <usize>(co - s0) * 4, ms, dst + <usize>co * 4, yRow, yPixel, rows, cols, lanes, tmpPtr_);
          else F2.outputTile(src + <usize>(co - s0) * 4, ms, dst + <usize>co * 4, yRow, yPixel, rows, cols, lanes, tmpPtr_);
        }
      }
    }
  }
}

// Exported only so that Binaryen keeps it a function of its own: inlined into compute()'s loops, V8 spills some of
// that function's variables inside the tile's loop and the GEMM runs ~15% slower.
export { tile4x8 };
