// The filter gradient of a 3×3 stride-1 convolution by Winograd's F(2×2, 3×3) or F(4×4, 3×3) in WebAssembly SIMD
// (AssemblyScript; built by `npm run build:wasm:winograd-conv2d-backprop-filter`), for Conv2DBackpropFilter in
// ../winograd-conv2d-backprop-filter-wasm.ts. Written by hand because it multiplies 1.3–4× less than the direct
// GEMM of ./conv2d-backprop-filter.ts, and because its order of operations must be fixed by the shapes alone.
//
// For x [N, H, W, CIN] at (TOP, LEFT) in a zero-padded image and dy [N, OH, OW, COUT]:
//   dW[i, j, ci, co] = Σ_{n, oh, ow} xpad[n, oh + i, ow + j, ci] · dy[n, oh, ow, co].
// The output positions are cut into m×m tiles (TH × TW per image; dy is zero past OH, OW). One tile's
// contribution is the gradient of its Winograd forward Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A with respect to g:
// Gᵀ [(Bᵀ d B) ⊙ (A dY Aᵀ)] G. Summed over tiles, for each of the α² positions ξ a reduction GEMM
//   S[ξ][ci, co] = Σ_tiles V[ξ][tile, ci] · Z[ξ][tile, co],   V = Bᵀ d B (x's tiles), Z = A dY Aᵀ (dy's tiles),
// and dW = Gᵀ S G once at the end (./winograd-f2x2-3x3.ts, ./winograd-f4x4-3x3.ts). Tiles go TB at a time: their
// V and Z are transformed into buffers, and register tiles of 4 ci × 8 co (./register-tile-4x8.ts) add the
// block's products into S.
//
// Memory (laid out by prepare(), grown only when a call needs more than any call before, and reused):
//   XPAD (N·HP·WP·CP f32, HP = TH·m + 2, WP = TW·m + 2, CP = CIN rounded up to 4), DYPAD (N·TH·m·TW·m·CO4 f32,
//   CO4 = COUT rounded up to 4), V (α²·TB·CP f32, [ξ][ci/4][tile][4]), Z (α²·TB·CO8, CO8 = COUT rounded up to 8,
//   [ξ][co/8][tile][8]), S (α²·CP·CO8, [ξ][ci][co]), the ξ planes a cache line apart,
//   DW (9·CIN·COUT), scratch; each 16-byte aligned.
// The host calls prepare(), copies x's pixels into XPAD and dy's into DYPAD (xPixelPtr, dyPixelPtr; prepare zeroed
// the rest), calls compute(), reads DW.
//
// Deterministic: plain IEEE f32 mul and add (no FMA, no relaxed SIMD). Each S entry sums its products in tile
// order from +0 whatever TB is (a register tile carries the running sum from one block to the next), so the
// bytes depend on the inputs and m alone. Winograd rounds differently from a direct sum (see the tests).

import * as F2 from './winograd-f2x2-3x3';
import * as F4 from './winograd-f4x4-3x3';
import { tile4x8Accumulate } from './register-tile-4x8';

let base: usize = 0;
let capacity: usize = 0;
let xPtr_: usize = 0;
let dyPtr_: usize = 0;
let vPtr_: usize = 0;
let zPtr_: usize = 0;
let sPtr_: usize = 0;
let dwPtr_: usize = 0;
let gPtr_: usize = 0; // 9 vectors: one 3×3 gradient
let tmpPtr_: usize = 0;

let N: i32 = 0;
let CIN: i32 = 0;
let CP: i32 = 0;
let COUT: i32 = 0;
let CO4: i32 = 0;
let CO8: i32 = 0;
let M: i32 = 0;
let A2: i32 = 0;
let TH: i32 = 0;
let TW: i32 = 0;
let HP: i32 = 0;
let WP: i32 = 0;
let TB: i32 = 0;

// Bytes added to the distance between two positions ξ of V, Z and S: with power-of-two distances the 36 vectors a
// tile transform reads or writes would all fall into one set of the L1 cache.
const PAD: usize = 64;

function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

/**
 * Lays memory out for one call: x [n, h, w, cin] at (top, left) of each padded image, dy [n, oh, ow, cout], a
 * 3×3 filter, tiles of m × m (2 or 4), tb tiles per block. Zeroes the padding of XPAD and DYPAD. Returns 1, or 0
 * when the shapes are not a stride-1 3×3 convolution or memory cannot grow.
 */
export function prepare(
  n: i32, h: i32, w: i32, cin: i32, oh: i32, ow: i32, cout: i32, top: i32, left: i32, m: i32, tb: i32,
): i32 {
  if (n < 1 || h < 1 || w < 1 || cin < 1 || oh < 1 || ow < 1 || cout < 1 || top < 0 || left < 0 || (m != 2 && m != 4) || tb < 1) return 0;
  if (top + h > oh + 2 || left + w > ow + 2) return 0;
  const alpha = m + 2;
  const a2 = <usize>(alpha * alpha);
  const cp = (cin + 3) & ~3;
  const co4 = (cout + 3) & ~3;
  const co8 = (cout + 7) & ~7;
  const th = (oh + m - 1) / m;
  const tw = (ow + m - 1) / m;
  const hp = th * m + 2;
  const wp = tw * m + 2;
  const xBytes = align16(<usize>n * <usize>hp * <usize>wp * <usize>cp * 4);
  const dyBytes = align16(<usize>n * <usize>(th * m) * <usize>(tw * m) * <usize>co4 * 4);
  const vBytes = a2 * (<usize>tb * <usize>cp * 4 + PAD);
  const zBytes = a2 * (<usize>tb * <usize>co8 * 4 + PAD);
  const sBytes = a2 * (<usize>cp * <usize>co8 * 4 + PAD);
  const dwBytes = align16(<usize>9 * <usize>cin * <usize>cout * 4);
  const need = xBytes + dyBytes + vBytes + zBytes + sBytes + dwBytes + 144 + 1024;
  if (base == 0) base = align16(__heap_base);
  if (need > capacity) {
    const end = base + need;
    const have = <usize>memory.size() << 16;
    if (end > have && memory.grow(<i32>((end - have + 0xffff) >>> 16)) < 0) return 0;
    capacity = need;
  }
  xPtr_ = base;
  dyPtr_ = xPtr_ + xBytes;
  vPtr_ = dyPtr_ + dyBytes;
  zPtr_ = vPtr_ + vBytes;
  sPtr_ = zPtr_ + zBytes;
  dwPtr_ = sPtr_ + sBytes;
  gPtr_ = dwPtr_ + dwBytes;
  tmpPtr_ = gPtr_ + 144;
  N = n; CIN = cin; CP = cp; COUT = cout; CO4 = co4; CO8 = co8; M = m; A2 = <i32>a2;
  TH = th; TW = tw; HP = hp; WP = wp; TB = tb;
  // XPAD: zero everything x does not cover (all of it when channel lanes cin..cp must be zero too).
  const pixel = <usize>cp * 4;
  const row = <usize>wp * pixel;
  if (cp != cin) {
    memory.fill(xPtr_, 0, <usize>n * <usize>hp * row);
  } else {
    const bottom = top + h;
    const right = left + w;
    for (let b = 0; b < n; b++) {
      const img = xPtr_ + <usize>b * <usize>hp * row;
      if (top > 0) memory.fill(img, 0, <usize>top * row);
      if (bottom < hp) memory.fill(img + <usize>bottom * row, 0, <usize>(hp - bottom) * row);
      for (let r = top; r < bottom; r++) {
        const p = img + <usize>r * row;
        if (left > 0) memory.fill(p, 0, <usize>left * pixel);
        if (right < wp) memory.fill(p + <usize>right * pixel, 0, <usize>(wp - right) * pixel);
      }
    }
  }
  // DYPAD: zero past OH and OW (all of it when lanes cout..co4 must be zero too).
  const dPixel = <usize>co4 * 4;
  const dRow = <usize>(tw * m) * dPixel;
  const dImage = <usize>(th * m) * dRow;
  if (co4 != cout) {
    memory.fill(dyPtr_, 0, <usize>n * dImage);
  } else if (th * m != oh || tw * m != ow) {
    for (let b = 0; b < n; b++) {
      const img = dyPtr_ + <usize>b * dImage;
      if (tw * m != ow) {
        for (let r = 0; r < oh; r++) memory.fill(img + <usize>r * dRow + <usize>ow * dPixel, 0, <usize>(tw * m - ow) * dPixel);
      }
      if (th * m != oh) memory.fill(img + <usize>oh * dRow, 0, <usize>(th * m - oh) * dRow);
    }
  }
  // Z's lanes past CO4 are never written: zero them.
  if (co8 != co4) memory.fill(zPtr_, 0, zBytes);
  return 1;
}

/** Where x's pixel (r, col) of image b goes (r < H, col < W after the (TOP, LEFT) shift the host applies). */
export function xPixelPtr(b: i32, r: i32, col: i32): usize {
  return xPtr_ + ((<usize>b * <usize>HP + <usize>r) * <usize>WP + <usize>col) * <usize>CP * 4;
}
/** Where dy's pixel (r, col) of image b goes. */
export function dyPixelPtr(b: i32, r: i32, col: i32): usize {
  return dyPtr_ + ((<usize>b * <usize>(TH * M) + <usize>r) * <usize>(TW * M) + <usize>col) * <usize>CO4 * 4;
}
export function dwPtr(): usize { return dwPtr_; }

/** DW from XPAD and DYPAD as laid out by the last prepare(). */
export function compute(): void {
  const perImage = TH * TW;
  const T = N * perImage;
  const xPixel = <usize>CP * 4;
  const xRow = <usize>WP * xPixel;
  const dPixel = <usize>CO4 * 4;
  const dRow = <usize>(TW * M) * dPixel;
  // V is [ξ][ci / 4][tile][4] and Z [ξ][co / 8][tile][8]: the reduction GEMM reads both sequentially.
  const vs = <usize>TB * <usize>CP * 4 + PAD; // bytes from one ξ to the next in V
  const zs = <usize>TB * <usize>CO8 * 4 + PAD; // and in Z
  const sRow = <usize>CO8 * 4;
  const ss = <usize>CP * sRow + PAD; // and in S
  for (let xi = 0; xi < A2; xi++) memory.fill(sPtr_ + <usize>xi * ss, 0, <usize>CP * sRow);
  for (let t0 = 0; t0 < T; t0 += TB) {
    const nb = min(TB, T - t0);
    for (let q = 0; q < nb; q++) {
      const t = t0 + q;
      const n = t / perImage;
      const ty = (t % perImage) / TW;
      const tx = t % TW;
      const xs = xPtr_ + (<usize>n * <usize>HP + <usize>(ty * M)) * xRow + <usize>(tx * M) * xPixel;
      const vd = vPtr_ + <usize>q * 16;
      for (let c4: usize = 0; c4 < <usize>CP; c4 += 4) {
        const dst = vd + c4 * <usize>TB * 4;
        if (M == 4) F4.inputTile(xs + c4 * 4, xRow, xPixel, dst, vs, tmpPtr_);
        else F2.inputTile(xs + c4 * 4, xRow, xPixel, dst, vs, tmpPtr_);
      }
      const ds = dyPtr_ + (<usize>n * <usize>(TH * M) + <usize>(ty * M)) * dRow + <usize>(tx * M) * dPixel;
      const zd = zPtr_ + <usize>q * 32;
      for (let o4: usize = 0; o4 < <usize>CO4; o4 += 4) {
        const dst = zd + (o4 >> 3) * <usize>TB * 32 + (o4 & 4) * 4;
        if (M == 4) F4.gradTile(ds + o4 * 4, dRow, dPixel, dst, zs, tmpPtr_);
        else F2.gradTile(ds + o4 * 4, dRow, dPixel, dst, zs, tmpPtr_);
      }
    }
    // S[ξ][ci, co] += Σ_q V[ξ][q, ci] · Z[ξ][q, co], q in order.
    for (let xi = 0; xi < A2; xi++) {
      const v = vPtr_ + <usize>xi * vs;
      const z = zPtr_ + <usize>xi * zs;
      const s = sPtr_ + <usize>xi * ss;
      for (let ci = 0; ci < CP; ci += 4) {
        const vc = v + <usize>ci * <usize>TB * 4;
        for (let co = 0; co < CO8; co += 8) {
          tile4x8Accumulate(vc, 16, z + <usize>co * <usize>TB * 4, 32, nb, s + <usize>ci * sRow + <usize>co * 4, sRow);
        }
      }
    }
  }
  // dW = Gᵀ S G for each (ci, 4 co), into [3, 3, CIN, COUT].
  for (let ci = 0; ci < CIN; ci++) {
    for (let co = 0; co < COUT; co += 4) {
      const lanes = min(4, COUT - co);
      if (M == 4) F4.filterGradTile(sPtr_ + <usize>ci * sRow + <usize>co * 4, ss, gPtr_, tmpPtr_);
      else F2.filterGradTile(sPtr_ + <usize>ci * sRow + <usize>co * 4, ss, gPtr_, tmpPtr_);
      for (let k = 0; k < 9; k++) {
        const v = v128.load(gPtr_ + (<usize>k << 4));
        const dst = dwPtr_ + ((<usize>k * <usize>CIN + <usize>ci) * <usize>COUT + <usize>co) * 4;
        if (lanes == 4) {
          v128.store(dst, v);
        } else {
          store<f32>(dst, f32x4.extract_lane(v, 0));
          if (lanes > 1) store<f32>(dst, f32x4.extract_lane(v, 1), 4);
          if (lanes > 2) store<f32>(dst, f32x4.extract_lane(v, 2), 8);
        }
      }
    }
  }
}

// Exported only so that Binaryen keeps it a function of its own (inlined into compute()'s loops, V8 spills).
export { tile4x8Accumulate };
