// Conv2D and Conv2DBackpropInput (NHWC, stride 1, dilation 1, zero padding) in WebAssembly SIMD
// (AssemblyScript; built by `npm run build:wasm:conv2d`), for the tfjs wasm backend's kernels in ../conv2d-wasm.ts.
//
// Both are one stride-1 correlation of an input a [N, H, W, C], placed at (TOP, LEFT) (negative: cropped) in a
// zero-padded apad [N, Hp, Wp, C] (Hp = OH + KH − 1, Wp = OW + KW − 1), with a filter F [KH, KW, C, COUT]:
//   y[n, oh, ow, co] = Σ_{i, j, c} apad[n, oh + i, ow + j, c] · F[i, j, c, co].
// - Conv2D: a = x, F = the filter W [KH, KW, Cin, Cout] as it is (pack mode 0).
// - Conv2DBackpropInput: a = dy [N, OH, OW, Cout] (padded by KH − 1 − top, KW − 1 − left), F = W rotated by
//   180° with its channel axes swapped, F[i, j, co, ci] = W[KH − 1 − i, KW − 1 − j, ci, co] (pack mode 1); y = dx.
//
// It is a GEMM over the N·OH·OW output pixels (M), the K = KH·KW·C products per output and COUT columns. For a
// fixed i the KW·C values apad[n, oh + i, ow + j, c] (j, c) lie next to each other in memory; so does the
// filter once packed into panels of 8 output channels (zero-filled past COUT): panel[k][lane], k = (i, j, c).
// Register tiles of 4 pixels × 8 output channels (eight f32x4 accumulators; 4 × 4 for a last panel of ≤ 4
// channels) run over the whole K: for each k, two f32x4 loads from the panel and four f32 splats from the
// pixels' rows. The pixels are flat (n, oh, ow), so a tile may span rows and images; a last tile of fewer than
// 4 pixels repeats the last one and stores only the real ones. Filter rows i where all four pixels' windows read
// only padding rows are skipped (exact: they add nothing). Pixels are taken CHUNK_PIXELS at a time, every panel
// passing over a chunk while its rows are in cache. Without FMA the tile is bound by the f32x4 mul and add
// ports (~25 GMAC/s on one x64 core); larger tiles (5 or 6 pixels × 8) and unrolling k ran slower under V8.
//
// Memory (laid out by prepare(), grown only when a call needs more than any call before, and reused):
//   APAD (N·Hp·Wp·C f32), Y (N·OH·OW·COUT f32), RAW (the filter as given, KH·KW·C·COUT f32),
//   PANELS (K·COUT8 f32), a chunk's pixel offsets and filter-row ranges, each 16-byte aligned.
// The host calls prepare(), copies a's rows into APAD (rowPtr; prepare zeroed the rest) and the filter into RAW,
// calls pack(mode) and compute(), and reads Y.
//
// Deterministic: plain IEEE f32 mul and add (no FMA, no relaxed SIMD); every output is one accumulator summing
// its products in k order from +0, which rows are skipped and that order fixed by the shapes alone.

const CHUNK_PIXELS: i32 = 64; // a multiple of 4

let base: usize = 0;
let capacity: usize = 0; // bytes usable from base
let aPtr_: usize = 0;
let yPtr_: usize = 0;
let rawPtr_: usize = 0;
let panelPtr_: usize = 0;
let pixPtr_: usize = 0;

let N: i32 = 0;
let C: i32 = 0;
let OH: i32 = 0;
let OW: i32 = 0;
let COUT: i32 = 0;
let KH: i32 = 0;
let KW: i32 = 0;
let HP: i32 = 0;
let WP: i32 = 0;
let R0: i32 = 0; // rows R0..R1 of each padded image hold a's rows; the rest is zero
let R1: i32 = 0;

function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

/**
 * Lays memory out for one call (growing it when needed) and zeroes what a's rows do not cover in APAD: a is
 * [n, h, w, c] at rows top.., columns left.. of each padded image [oh + kh − 1, ow + kw − 1]. Returns 1, or 0 when
 * a dimension is not positive or memory cannot grow.
 */
export function prepare(
  n: i32, h: i32, w: i32, c: i32, top: i32, left: i32, oh: i32, ow: i32, cout: i32, kh: i32, kw: i32,
): i32 {
  if (n < 1 || h < 1 || w < 1 || c < 1 || oh < 1 || ow < 1 || cout < 1 || kh < 1 || kw < 1) return 0;
  const hp = oh + kh - 1;
  const wp = ow + kw - 1;
  const cout8 = (cout + 7) & ~7;
  const aBytes = align16(<usize>n * <usize>hp * <usize>wp * <usize>c * 4);
  const yBytes = align16(<usize>n * <usize>oh * <usize>ow * <usize>cout * 4);
  const rawBytes = align16(<usize>kh * <usize>kw * <usize>c * <usize>cout * 4);
  const panelBytes = <usize>kh * <usize>kw * <usize>c * <usize>cout8 * 4;
  const pixBytes = <usize>CHUNK_PIXELS * 8;
  const need = aBytes + yBytes + rawBytes + panelBytes + pixBytes;
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
  panelPtr_ = rawPtr_ + rawBytes;
  pixPtr_ = panelPtr_ + panelBytes;
  N = n; C = c; OH = oh; OW = ow; COUT = cout; KH = kh; KW = kw; HP = hp; WP = wp;
  // Zero what a does not cover: rows above r0 and from r1 on, and the columns left of c0 and from c1 on between.
  const pixel = <usize>c * 4;
  const row = <usize>wp * pixel;
  const r0 = min(hp, max(0, top));
  const r1 = max(r0, min(hp, top + h));
  R0 = r0;
  R1 = r1;
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

/** Where padded row `r` (0 ≤ r < Hp) of image `b` starts in APAD: Wp·C f32s. */
export function rowPtr(b: i32, r: i32): usize {
  return aPtr_ + (<usize>b * <usize>HP + <usize>r) * <usize>WP * <usize>C * 4;
}
export function rawPtr(): usize { return rawPtr_; }
export function yPtr(): usize { return yPtr_; }

/**
 * Packs RAW into PANELS: panel p (output channels 8p..) is [K][width] f32 (width 8, or 4 for a last panel of
 * ≤ 4 channels), lanes past COUT zero; it starts at f32 8p·K. Mode 0: RAW is F [KH, KW, C, COUT] itself.
 * Mode 1: RAW is W [KH, KW, COUT, C] and F[i, j, c, co] = W[KH − 1 − i, KW − 1 − j, co, c].
 */
export function pack(mode: i32): void {
  const K = KH * KW * C;
  for (let co0 = 0; co0 < COUT; co0 += 8) {
    const rem = COUT - co0;
    const width = rem <= 4 ? 4 : 8;
    const panel = panelPtr_ + <usize>co0 * <usize>K * 4;
    for (let k = 0; k < K; k++) {
      const dst = panel + <usize>k * <usize>width * 4;
      const i = k / (KW * C);
      const j = (k / C) % KW;
      const c = k % C;
      for (let lane = 0; lane < width; lane++) {
        const co = co0 + lane;
        let v: f32 = 0;
        if (lane < rem) {
          const src = mode == 0
            ? <usize>k * <usize>COUT + <usize>co
            : ((<usize>(KH - 1 - i) * <usize>KW + <usize>(KW - 1 - j)) * <usize>COUT + <usize>co) * <usize>C + <usize>c;
          v = load<f32>(rawPtr_ + src * 4);
        }
        store<f32>(dst + <usize>lane * 4, v);
      }
    }
  }
}

// @ts-ignore: decorator
@inline
function acc(a: v128, x: v128, w: v128): v128 {
  return f32x4.add(a, f32x4.mul(x, w));
}

/** Stores the first n (0..4) lanes of v at p. */
// @ts-ignore: decorator
@inline
function storeLanes(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
  } else {
    if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
    if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
    if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
  }
}

/**
 * Four pixels (their apad windows start at p0..p3) × one panel of 8 channels at pw; stores pixels < np and
 * channels < rem of y from py (pixel stride ys bytes). krow = KW·C products per filter row, skip = bytes from
 * the end of one window row to the start of the next.
 */
function tile4x8(p0: usize, p1: usize, p2: usize, p3: usize, pw: usize, i0: i32, i1: i32, krow: i32, skip: usize, py: usize, ys: usize, np: i32, rem: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), d0 = f32x4.splat(0), d1 = f32x4.splat(0);
  let off = <usize>i0 * (<usize>krow * 4 + skip);
  let w = pw + <usize>i0 * <usize>krow * 32;
  for (let i = i0; i < i1; i++) {
    for (let k = 0; k < krow; k++) {
      const w0 = v128.load(w);
      const w1 = v128.load(w, 16);
      const x0 = v128.load32_splat(p0 + off);
      a0 = acc(a0, x0, w0);
      a1 = acc(a1, x0, w1);
      const x1 = v128.load32_splat(p1 + off);
      b0 = acc(b0, x1, w0);
      b1 = acc(b1, x1, w1);
      const x2 = v128.load32_splat(p2 + off);
      c0 = acc(c0, x2, w0);
      c1 = acc(c1, x2, w1);
      const x3 = v128.load32_splat(p3 + off);
      d0 = acc(d0, x3, w0);
      d1 = acc(d1, x3, w1);
      off += 4;
      w += 32;
    }
    off += skip;
  }
  if (np == 4 && rem >= 8) {
    v128.store(py, a0);
    v128.store(py, a1, 16);
    py += ys;
    v128.store(py, b0);
    v128.store(py, b1, 16);
    py += ys;
    v128.store(py, c0);
    v128.store(py, c1, 16);
    py += ys;
    v128.store(py, d0);
    v128.store(py, d1, 16);
    return;
  }
  const r1 = rem - 4;
  storeLanes(py, a0, rem);
  storeLanes(py + 16, a1, r1);
  if (np < 2) return;
  py += ys;
  storeLanes(py, b0, rem);
  storeLanes(py + 16, b1, r1);
  if (np < 3) return;
  py += ys;
  storeLanes(py, c0, rem);
  storeLanes(py + 16, c1, r1);
  if (np < 4) return;
  py += ys;
  storeLanes(py, d0, rem);
  storeLanes(py + 16, d1, r1);
}

/** tile4x8 for a last panel of width 4 (rem ≤ 4). */
function tile4x4(p0: usize, p1: usize, p2: usize, p3: usize, pw: usize, i0: i32, i1: i32, krow: i32, skip: usize, py: usize, ys: usize, np: i32, rem: i32): void {
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0), c0 = f32x4.splat(0), d0 = f32x4.splat(0);
  let off = <usize>i0 * (<usize>krow * 4 + skip);
  let w = pw + <usize>i0 * <usize>krow * 16;
  for (let i = i0; i < i1; i++) {
    for (let k = 0; k < krow; k++) {
      const w0 = v128.load(w);
      a0 = acc(a0, v128.load32_splat(p0 + off), w0);
      b0 = acc(b0, v128.load32_splat(p1 + off), w0);
      c0 = acc(c0, v128.load32_splat(p2 + off), w0);
      d0 = acc(d0, v128.load32_splat(p3 + off), w0);
      off += 4;
      w += 16;
    }
    off += skip;
  }
  storeLanes(py, a0, rem);
  if (np < 2) return;
  py += ys;
  storeLanes(py, b0, rem);
  if (np < 3) return;
  py += ys;
  storeLanes(py, c0, rem);
  if (np < 4) return;
  py += ys;
  storeLanes(py, d0, rem);
}

/** Y from APAD and PANELS as laid out by the last prepare() and pack(). */
export function compute(): void {
  const M = N * OH * OW;
  const K = KH * KW * C;
  const krow = KW * C;
  const skip = <usize>(WP - KW) * <usize>C * 4;
  const ys = <usize>COUT * 4;
  // Per pixel of a chunk: the byte offset of its window in APAD, and the filter rows i0..i1 where the window
  // reads any of a's rows (the others read only padding: skipping them is exact, they add nothing).
  const pix = pixPtr_;
  const rng = pixPtr_ + <usize>CHUNK_PIXELS * 4;
  // The pixel (n, oh, ow) that starts the chunk, advanced pixel by pixel.
  let n = 0;
  let oh = 0;
  let ow = 0;
  for (let m0 = 0; m0 < M; m0 += CHUNK_PIXELS) {
    const cnt = min(CHUNK_PIXELS, M - m0);
    for (let q = 0; q < cnt; q++) {
      store<u32>(pix + (<usize>q << 2), <u32>(((<usize>n * <usize>HP + <usize>oh) * <usize>WP + <usize>ow) * <usize>C * 4));
      store<u16>(rng + (<usize>q << 2), <u16>max(0, R0 - oh));
      store<u16>(rng + (<usize>q << 2), <u16>max(0, min(KH, R1 - oh)), 2);
      if (++ow == OW) {
        ow = 0;
        if (++oh == OH) {
          oh = 0;
          n++;
        }
      }
    }
    for (let co0 = 0; co0 < COUT; co0 += 8) {
      const rem = COUT - co0;
      const panel = panelPtr_ + <usize>co0 * <usize>K * 4;
      for (let q = 0; q < cnt; q += 4) {
        const np = min(4, cnt - q);
        const q0 = <usize>q << 2;
        const q1 = <usize>(q + min(1, np - 1)) << 2;
        const q2 = <usize>(q + min(2, np - 1)) << 2;
        const q3 = <usize>(q + min(3, np - 1)) << 2;
        const p0 = aPtr_ + <usize>load<u32>(pix + q0);
        const p1 = aPtr_ + <usize>load<u32>(pix + q1);
        const p2 = aPtr_ + <usize>load<u32>(pix + q2);
        const p3 = aPtr_ + <usize>load<u32>(pix + q3);
        // The union of the four pixels' row ranges (they may lie in different rows).
        const i0 = min(min(<i32>load<u16>(rng + q0), <i32>load<u16>(rng + q1)), min(<i32>load<u16>(rng + q2), <i32>load<u16>(rng + q3)));
        const i1 = max(max(<i32>load<u16>(rng + q0, 2), <i32>load<u16>(rng + q1, 2)), max(<i32>load<u16>(rng + q2, 2), <i32>load<u16>(rng + q3, 2)));
        const py = yPtr_ + (<usize>(m0 + q) * <usize>COUT + <usize>co0) * 4;
        if (rem > 4) tile4x8(p0, p1, p2, p3, panel, i0, i1, krow, skip, py, ys, np, rem);
        else tile4x4(p0, p1, p2, p3, panel, i0, i1, krow, skip, py, ys, np, rem);
      }
    }
  }
}
