// Conv2DBackpropFilter (NHWC, stride 1, dilation 1, zero padding) in WebAssembly SIMD (AssemblyScript; built by
// `npm run build:wasm:conv-filter`), for the tfjs wasm backend's kernel in ../conv2d-backprop-filter-wasm.ts.
//
// For x [N, H, W, Cin] zero-padded to xpad [N, Hp, Wp, Cin] (Hp = OH + KH − 1, Wp = OW + KW − 1) and
// dy [N, OH, OW, Cout]:
//   dW[i, j, ci, co] = Σ_{n, oh, ow} xpad[n, oh + i, ow + j, ci] · dy[n, oh, ow, co].
// For a fixed i, the KW·Cin values xpad[n, oh + i, ow + j, ci] (k = j·Cin + ci) lie next to each other in
// memory, and so do the rows k of dW[i] ([KW·Cin, Cout]): each i is one GEMM
//   dW[i][k, co] += Σ_pixels X_i[pixel, k] · dY[pixel, co]
// over the pixels (n, oh, ow). It is computed in register tiles of 4 k × 8 co (eight f32x4 accumulators; 4 × 4,
// 4 × 1 (lanes over k), 1 × 8, 1 × 4 and 1 × 1 for the edges of K = KW·Cin and Cout), over chunks of
// max(1, CHUNK_PIXELS / OW) output rows of one image (kept in cache while every tile passes over them), adding each tile's sums
// into dW once per chunk. Rows and columns where the whole tile reads padding are skipped (exact: they add
// nothing); the rest read the zeros of xpad.
//
// Memory (laid out by prepare(), grown only when a call needs more than any call before, and reused):
//   XPAD (N·Hp·Wp·Cin f32), DY (N·OH·OW·Cout f32), DW (KH·KW·Cin·Cout f32), each 16-byte aligned.
// The host calls prepare(), copies x's rows into XPAD (rowPtr) and dy into DY, calls compute(), reads DW.
//
// Deterministic: plain IEEE f32 mul and add (no FMA, no relaxed SIMD), in an order fixed by the shapes alone:
// for each chunk (images, then rows, in order), each tile sums the chunk's pixels in row-major order starting
// from +0, then dW += that sum.

const CHUNK_PIXELS: i32 = 64;

let base: usize = 0;
let capacity: usize = 0; // bytes usable from base
let xPtr_: usize = 0;
let dyPtr_: usize = 0;
let dwPtr_: usize = 0;

let N: i32 = 0;
let H: i32 = 0;
let W: i32 = 0;
let CIN: i32 = 0;
let OH: i32 = 0;
let OW: i32 = 0;
let COUT: i32 = 0;
let KH: i32 = 0;
let KW: i32 = 0;
let TOP: i32 = 0;
let LEFT: i32 = 0;
let HP: i32 = 0;
let WP: i32 = 0;

function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

/**
 * Lays memory out for one call (growing it when needed) and zeroes XPAD's padding. Returns 1, or 0 when the
 * shapes are not a stride-1 convolution or memory cannot grow.
 */
export function prepare(
  n: i32, h: i32, w: i32, cin: i32, oh: i32, ow: i32, cout: i32, kh: i32, kw: i32, top: i32, left: i32,
): i32 {
  if (n < 1 || h < 1 || w < 1 || cin < 1 || oh < 1 || ow < 1 || cout < 1 || kh < 1 || kw < 1 || top < 0 || left < 0) return 0;
  const hp = oh + kh - 1;
  const wp = ow + kw - 1;
  if (top + h > hp || left + w > wp) return 0;
  const xBytes = align16(<usize>n * <usize>hp * <usize>wp * <usize>cin * 4);
  const dyBytes = align16(<usize>n * <usize>oh * <usize>ow * <usize>cout * 4);
  const dwBytes = align16(<usize>kh * <usize>kw * <usize>cin * <usize>cout * 4);
  const need = xBytes + dyBytes + dwBytes;
  if (base == 0) base = align16(__heap_base);
  if (need > capacity) {
    const end = base + need;
    const have = <usize>memory.size() << 16;
    if (end > have && memory.grow(<i32>((end - have + 0xffff) >>> 16)) < 0) return 0;
    capacity = need;
  }
  xPtr_ = base;
  dyPtr_ = base + xBytes;
  dwPtr_ = base + xBytes + dyBytes;
  N = n; H = h; W = w; CIN = cin; OH = oh; OW = ow; COUT = cout; KH = kh; KW = kw; TOP = top; LEFT = left;
  HP = hp; WP = wp;
  // Zero the padding of every image: the top and bottom rows, the left and right columns of the rows between.
  const pixel = <usize>cin * 4;
  const row = <usize>wp * pixel;
  const bottom = hp - top - h;
  const right = wp - left - w;
  for (let b = 0; b < n; b++) {
    const img = xPtr_ + <usize>b * <usize>hp * row;
    if (top > 0) memory.fill(img, 0, <usize>top * row);
    if (bottom > 0) memory.fill(img + <usize>(top + h) * row, 0, <usize>bottom * row);
    for (let r = top; r < top + h; r++) {
      const p = img + <usize>r * row;
      if (left > 0) memory.fill(p, 0, <usize>left * pixel);
      if (right > 0) memory.fill(p + <usize>(left + w) * pixel, 0, <usize>right * pixel);
    }
  }
  return 1;
}

/** Where row `r` (0 ≤ r < H) of image `b` of x goes: W·Cin f32s. */
export function rowPtr(b: i32, r: i32): usize {
  return xPtr_ + ((<usize>b * <usize>HP + <usize>(TOP + r)) * <usize>WP + <usize>LEFT) * <usize>CIN * 4;
}
export function dyPtr(): usize { return dyPtr_; }
export function dwPtr(): usize { return dwPtr_; }

// ---- Tiles. Each sums `rows` × `cols` pixels: x from px (row stride xr, pixel stride xs bytes), dy from pd
// (row stride dr, pixel stride ds bytes), then adds the sums into dW at pw (row stride wr bytes between k's).

// @ts-ignore: decorator
@inline
function acc(a: v128, x: v128, d: v128): v128 {
  return f32x4.add(a, f32x4.mul(x, d));
}

function tile4x8(px: usize, pd: usize, rows: i32, cols: i32, xr: usize, xs: usize, dr: usize, ds: usize, pw: usize, wr: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), e0 = f32x4.splat(0), e1 = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    let x = px + <usize>r * xr;
    let d = pd + <usize>r * dr;
    for (let c = 0; c < cols; c++) {
      const d0 = v128.load(d);
      const d1 = v128.load(d, 16);
      const x0 = v128.load32_splat(x);
      a0 = acc(a0, x0, d0);
      a1 = acc(a1, x0, d1);
      const x1 = v128.load32_splat(x, 4);
      b0 = acc(b0, x1, d0);
      b1 = acc(b1, x1, d1);
      const x2 = v128.load32_splat(x, 8);
      c0 = acc(c0, x2, d0);
      c1 = acc(c1, x2, d1);
      const x3 = v128.load32_splat(x, 12);
      e0 = acc(e0, x3, d0);
      e1 = acc(e1, x3, d1);
      x += xs;
      d += ds;
    }
  }
  v128.store(pw, f32x4.add(v128.load(pw), a0));
  v128.store(pw, f32x4.add(v128.load(pw, 16), a1), 16);
  pw += wr;
  v128.store(pw, f32x4.add(v128.load(pw), b0));
  v128.store(pw, f32x4.add(v128.load(pw, 16), b1), 16);
  pw += wr;
  v128.store(pw, f32x4.add(v128.load(pw), c0));
  v128.store(pw, f32x4.add(v128.load(pw, 16), c1), 16);
  pw += wr;
  v128.store(pw, f32x4.add(v128.load(pw), e0));
  v128.store(pw, f32x4.add(v128.load(pw, 16), e1), 16);
}

function tile4x4(px: usize, pd: usize, rows: i32, cols: i32, xr: usize, xs: usize, dr: usize, ds: usize, pw: usize, wr: usize): void {
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0), c0 = f32x4.splat(0), e0 = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    let x = px + <usize>r * xr;
    let d = pd + <usize>r * dr;
    for (let c = 0; c < cols; c++) {
      const d0 = v128.load(d);
      a0 = acc(a0, v128.load32_splat(x), d0);
      b0 = acc(b0, v128.load32_splat(x, 4), d0);
      c0 = acc(c0, v128.load32_splat(x, 8), d0);
      e0 = acc(e0, v128.load32_splat(x, 12), d0);
      x += xs;
      d += ds;
    }
  }
  v128.store(pw, f32x4.add(v128.load(pw), a0));
  pw += wr;
  v128.store(pw, f32x4.add(v128.load(pw), b0));
  pw += wr;
  v128.store(pw, f32x4.add(v128.load(pw), c0));
  pw += wr;
  v128.store(pw, f32x4.add(v128.load(pw), e0));
}

/** 4 k's (the lanes) × 1 co. */
function tile4x1(px: usize, pd: usize, rows: i32, cols: i32, xr: usize, xs: usize, dr: usize, ds: usize, pw: usize, wr: usize): void {
  let a = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    let x = px + <usize>r * xr;
    let d = pd + <usize>r * dr;
    for (let c = 0; c < cols; c++) {
      a = acc(a, v128.load(x), v128.load32_splat(d));
      x += xs;
      d += ds;
    }
  }
  store<f32>(pw, load<f32>(pw) + f32x4.extract_lane(a, 0));
  pw += wr;
  store<f32>(pw, load<f32>(pw) + f32x4.extract_lane(a, 1));
  pw += wr;
  store<f32>(pw, load<f32>(pw) + f32x4.extract_lane(a, 2));
  pw += wr;
  store<f32>(pw, load<f32>(pw) + f32x4.extract_lane(a, 3));
}

function tile1x8(px: usize, pd: usize, rows: i32, cols: i32, xr: usize, xs: usize, dr: usize, ds: usize, pw: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    let x = px + <usize>r * xr;
    let d = pd + <usize>r * dr;
    for (let c = 0; c < cols; c++) {
      const x0 = v128.load32_splat(x);
      a0 = acc(a0, x0, v128.load(d));
      a1 = acc(a1, x0, v128.load(d, 16));
      x += xs;
      d += ds;
    }
  }
  v128.store(pw, f32x4.add(v128.load(pw), a0));
  v128.store(pw, f32x4.add(v128.load(pw, 16), a1), 16);
}

function tile1x4(px: usize, pd: usize, rows: i32, cols: i32, xr: usize, xs: usize, dr: usize, ds: usize, pw: usize): void {
  let a0 = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    let x = px + <usize>r * xr;
    let d = pd + <usize>r * dr;
    for (let c = 0; c < cols; c++) {
      a0 = acc(a0, v128.load32_splat(x), v128.load(d));
      x += xs;
      d += ds;
    }
  }
  v128.store(pw, f32x4.add(v128.load(pw), a0));
}

function tile1x1(px: usize, pd: usize, rows: i32, cols: i32, xr: usize, xs: usize, dr: usize, ds: usize, pw: usize): void {
  let a: f32 = 0;
  for (let r = 0; r < rows; r++) {
    let x = px + <usize>r * xr;
    let d = pd + <usize>r * dr;
    for (let c = 0; c < cols; c++) {
      a += load<f32>(x) * load<f32>(d);
      x += xs;
      d += ds;
    }
  }
  store<f32>(pw, load<f32>(pw) + a);
}

/** dW (in DW) from XPAD and DY as laid out by the last prepare(). */
export function compute(): void {
  const K = KW * CIN;
  const xs = <usize>CIN * 4; // bytes per pixel of x
  const ds = <usize>COUT * 4; // bytes per pixel of dy
  const xr = <usize>WP * xs; // bytes per row of xpad
  const dr = <usize>OW * ds; // bytes per row of dy
  const wr = <usize>COUT * 4; // bytes per k of dW
  const k4 = K & ~3;
  const c8 = COUT & ~7;
  const c4 = COUT & ~3;
  memory.fill(dwPtr_, 0, <usize>KH * <usize>K * wr);
  const chunkRows = max(1, CHUNK_PIXELS / OW);
  for (let n = 0; n < N; n++) {
    for (let oh0 = 0; oh0 < OH; oh0 += chunkRows) {
      const oh1 = min(OH, oh0 + chunkRows);
      for (let i = 0; i < KH; i++) {
        // Rows whose x row oh + i is padding add nothing.
        const r0 = max(oh0, TOP - i);
        const r1 = min(oh1, TOP + H - i);
        if (r0 >= r1) continue;
        const rows = r1 - r0;
        const xRow = xPtr_ + (<usize>n * <usize>HP + <usize>(r0 + i)) * xr;
        const dRow = dyPtr_ + (<usize>n * <usize>OH + <usize>r0) * dr;
        const wI = dwPtr_ + <usize>i * <usize>K * wr;
        for (let k = 0; k < K; ) {
          const kn = k < k4 ? 4 : 1;
          // Columns where every k of the tile reads padding (j from k / Cin to (k + kn − 1) / Cin) add nothing.
          const jA = k / CIN;
          const jB = (k + kn - 1) / CIN;
          const q0 = max(0, LEFT - jB);
          const q1 = min(OW, LEFT + W - jA);
          if (q0 < q1) {
            const cols = q1 - q0;
            const px = xRow + <usize>q0 * xs + <usize>k * 4;
            const pd = dRow + <usize>q0 * ds;
            const pw = wI + <usize>k * wr;
            if (kn == 4) {
              let co = 0;
              for (; co < c8; co += 8) tile4x8(px, pd + <usize>co * 4, rows, cols, xr, xs, dr, ds, pw + <usize>co * 4, wr);
              if (co < c4) {
                tile4x4(px, pd + <usize>co * 4, rows, cols, xr, xs, dr, ds, pw + <usize>co * 4, wr);
                co += 4;
              }
              for (; co < COUT; co++) tile4x1(px, pd + <usize>co * 4, rows, cols, xr, xs, dr, ds, pw + <usize>co * 4, wr);
            } else {
              let co = 0;
              for (; co < c8; co += 8) tile1x8(px, pd + <usize>co * 4, rows, cols, xr, xs, dr, ds, pw + <usize>co * 4);
              if (co < c4) {
                tile1x4(px, pd + <usize>co * 4, rows, cols, xr, xs, dr, ds, pw + <usize>co * 4);
                co += 4;
              }
              for (; co < COUT; co++) tile1x1(px, pd + <usize>co * 4, rows, cols, xr, xs, dr, ds, pw + <usize>co * 4);
            }
          }
          k += kn;
        }
      }
    }
  }
}
