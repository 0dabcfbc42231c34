// The gradient of a 2×2, stride-2, unpadded max-pool (NHWC) in WebAssembly SIMD (AssemblyScript; built by
// `npm run build:wasm:max-pool-grad`), for MaxPoolGrad in ../wasm-training-kernels.ts: every convolution stage of
// bn-cnn ends in one. Written by hand for speed (four channels at a time, about 4× the plain JavaScript loop it
// replaces) with exactly that loop's results: each window's gradient goes to its first strict maximum in row-major
// order, starting from −∞ (so NaN and all-−∞ windows send nothing), as dx = 0 + dy, and everything else is +0.
//
// Memory (laid out by prepare(), grown only when a call needs more than any call before, and reused):
//   X (N·H·W·C f32, the pool's input), DY (N·OH·OW·C f32), DX (N·H·W·C f32); each 16-byte aligned.
// The host calls prepare(), copies x and dy in, calls compute() and reads DX.

let base: usize = 0;
let capacity: usize = 0;
let xPtr_: usize = 0;
let dyPtr_: usize = 0;
let dxPtr_: usize = 0;
let N: i32 = 0;
let H: i32 = 0;
let W: i32 = 0;
let C: i32 = 0;
let OH: i32 = 0;
let OW: i32 = 0;

function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

/** Lays memory out for x [n, h, w, c] pooled to [n, oh, ow, c] (2·oh ≤ h, 2·ow ≤ w). Returns 1, or 0. */
export function prepare(n: i32, h: i32, w: i32, c: i32, oh: i32, ow: i32): i32 {
  if (n < 1 || h < 1 || w < 1 || c < 1 || oh < 0 || ow < 0 || 2 * oh > h || 2 * ow > w) return 0;
  const xBytes = align16(<usize>n * <usize>h * <usize>w * <usize>c * 4);
  const dyBytes = align16(<usize>n * <usize>oh * <usize>ow * <usize>c * 4);
  const need = xBytes + dyBytes + xBytes;
  if (base == 0) base = align16(__heap_base);
  if (need > capacity) {
    const end = base + need;
    const have = <usize>memory.size() << 16;
    if (end > have && memory.grow(<i32>((end - have + 0xffff) >>> 16)) < 0) return 0;
    capacity = need;
  }
  xPtr_ = base;
  dyPtr_ = xPtr_ + xBytes;
  dxPtr_ = dyPtr_ + dyBytes;
  N = n; H = h; W = w; C = c; OH = oh; OW = ow;
  return 1;
}

export function xPtr(): usize { return xPtr_; }
export function dyPtr(): usize { return dyPtr_; }
export function dxPtr(): usize { return dxPtr_; }

/** DX from X and DY. */
export function compute(): void {
  const pixel = <usize>C * 4;
  const row = <usize>W * pixel;
  memory.fill(dxPtr_, 0, <usize>N * <usize>H * row);
  const c4 = <usize>(C & ~3) * 4;
  const ninf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
  let g = dyPtr_;
  for (let b = 0; b < N; b++) {
    for (let r = 0; r < OH; r++) {
      const top = (<usize>b * <usize>H + <usize>(2 * r)) * row;
      for (let q = 0; q < OW; q++) {
        const at = top + <usize>(2 * q) * pixel;
        const xa = xPtr_ + at;
        const da = dxPtr_ + at;
        let k: usize = 0;
        for (; k < c4; k += 16) {
          // The first strict maximum of a, b, c, d (row-major) over −∞, lane by lane.
          const a = v128.load(xa + k);
          const bb = v128.load(xa + k + pixel);
          const c = v128.load(xa + k + row);
          const d = v128.load(xa + k + row + pixel);
          const ma = f32x4.gt(a, ninf);
          let best = v128.bitselect(a, ninf, ma);
          const mb = f32x4.gt(bb, best);
          best = v128.bitselect(bb, best, mb);
          const mc = f32x4.gt(c, best);
          best = v128.bitselect(c, best, mc);
          const md = f32x4.gt(d, best);
          const gv = f32x4.add(zero, v128.load(g + k));
          const notD = v128.not(md);
          const wc = v128.and(mc, notD);
          const notCD = v128.andnot(notD, mc);
          const wb = v128.and(mb, notCD);
          const wa = v128.andnot(v128.andnot(ma, mb), v128.or(mc, md));
          v128.store(da + k, v128.and(gv, wa));
          v128.store(da + k + pixel, v128.and(gv, wb));
          v128.store(da + k + row, v128.and(gv, wc));
          v128.store(da + k + row + pixel, v128.and(gv, md));
        }
        for (; k < pixel; k += 4) {
          let best: f32 = -Infinity;
          let to: usize = 0;
          let v = load<f32>(xa + k);
          if (v > best) { best = v; to = da + k; }
          v = load<f32>(xa + k + pixel);
          if (v > best) { best = v; to = da + k + pixel; }
          v = load<f32>(xa + k + row);
          if (v > best) { best = v; to = da + k + row; }
          v = load<f32>(xa + k + row + pixel);
          if (v > best) to = da + k + row + pixel;
          if (to != 0) store<f32>(to, load<f32>(to) + load<f32>(g + k));
        }
        g += pixel;
      }
    }
  }
}
