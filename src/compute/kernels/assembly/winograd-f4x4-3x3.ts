// The transforms of Winograd's F(4×4, 3×3) in WebAssembly SIMD (AssemblyScript, imported by ./winograd-conv2d.ts
// and ./winograd-conv2d-backprop-filter.ts), on f32x4 vectors of 4 channels at a time. Written by hand for speed and
// determinism: each is a fixed sequence of IEEE f32 adds and multiplies (no FMA), so a tile transforms to the same
// bytes on every machine.
//
// With interpolation points 0, ±1, ±2 and ∞ (Lavin & Gray 2016), a 4×4 block of a 3×3 correlation of a 6×6 input
// tile d with a filter g is Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A: 36 multiplications instead of 144. The filter
// gradient of the same tile is dg = Gᵀ [(Bᵀ d B) ⊙ (A dY Aᵀ)] G (the transpose of that linear map in g), so the
// filter gradient sums (Bᵀ d B) ⊙ (A dY Aᵀ) over tiles and transforms back once.
//   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//   G  = [1/4 0 0; −1/6 −1/6 −1/6; −1/6 1/6 −1/6; 1/24 1/12 1/6; 1/24 −1/12 1/6; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
// Each 2-D transform is the 1-D one on the columns, into a scratch of 6 × 6 vectors, then on the rows.

const ROW: usize = 96; // bytes of one scratch row: 6 vectors

/** Bᵀ on 6 vectors at s (stride ss bytes) into 6 at d (stride ds). */
// @ts-ignore: decorator
@inline
function bt(s: usize, ss: usize, d: usize, ds: usize): void {
  const d0 = v128.load(s);
  const d1 = v128.load(s + ss);
  const d2 = v128.load(s + 2 * ss);
  const d3 = v128.load(s + 3 * ss);
  const d4 = v128.load(s + 4 * ss);
  const d5 = v128.load(s + 5 * ss);
  const four = f32x4.splat(4);
  const a = f32x4.sub(d4, f32x4.mul(four, d2)); // d4 − 4 d2
  const b = f32x4.sub(d3, f32x4.mul(four, d1)); // d3 − 4 d1
  const c = f32x4.sub(d4, d2);
  const e = f32x4.mul(f32x4.splat(2), f32x4.sub(d3, d1));
  v128.store(d, f32x4.add(f32x4.mul(four, f32x4.sub(d0, d2)), c)); // 4 d0 − 5 d2 + d4
  v128.store(d + ds, f32x4.add(a, b)); // −4 d1 − 4 d2 + d3 + d4
  v128.store(d + 2 * ds, f32x4.sub(a, b)); // 4 d1 − 4 d2 − d3 + d4
  v128.store(d + 3 * ds, f32x4.add(c, e)); // −2 d1 − d2 + 2 d3 + d4
  v128.store(d + 4 * ds, f32x4.sub(c, e)); // 2 d1 − d2 − 2 d3 + d4
  v128.store(d + 5 * ds, f32x4.add(f32x4.mul(four, f32x4.sub(d1, d3)), f32x4.sub(d5, d3))); // 4 d1 − 5 d3 + d5
}

/** Aᵀ on 6 vectors at s (stride ss) into 4 at d (stride ds). */
// @ts-ignore: decorator
@inline
function at(s: usize, ss: usize, d: usize, ds: usize): void {
  const m0 = v128.load(s);
  const m1 = v128.load(s + ss);
  const m2 = v128.load(s + 2 * ss);
  const m3 = v128.load(s + 3 * ss);
  const m4 = v128.load(s + 4 * ss);
  const m5 = v128.load(s + 5 * ss);
  const s12 = f32x4.add(m1, m2);
  const d12 = f32x4.sub(m1, m2);
  const s34 = f32x4.add(m3, m4);
  const d34 = f32x4.sub(m3, m4);
  v128.store(d, f32x4.add(f32x4.add(m0, s12), s34));
  v128.store(d + ds, f32x4.add(d12, f32x4.mul(f32x4.splat(2), d34)));
  v128.store(d + 2 * ds, f32x4.add(s12, f32x4.mul(f32x4.splat(4), s34)));
  v128.store(d + 3 * ds, f32x4.add(f32x4.add(d12, f32x4.mul(f32x4.splat(8), d34)), m5));
}

/** G on 3 vectors at s (stride ss) into 6 at d (stride ds). */
// @ts-ignore: decorator
@inline
function g(s: usize, ss: usize, d: usize, ds: usize): void {
  const g0 = v128.load(s);
  const g1 = v128.load(s + ss);
  const g2 = v128.load(s + 2 * ss);
  const sum = f32x4.add(g0, g2);
  const sixth = f32x4.splat(<f32>(-1.0 / 6.0));
  const a = f32x4.add(f32x4.mul(g0, f32x4.splat(<f32>(1.0 / 24.0))), f32x4.mul(g2, f32x4.splat(<f32>(1.0 / 6.0))));
  const b = f32x4.mul(g1, f32x4.splat(<f32>(1.0 / 12.0)));
  v128.store(d, f32x4.mul(g0, f32x4.splat(0.25)));
  v128.store(d + ds, f32x4.mul(f32x4.add(sum, g1), sixth));
  v128.store(d + 2 * ds, f32x4.mul(f32x4.sub(sum, g1), sixth));
  v128.store(d + 3 * ds, f32x4.add(a, b));
  v128.store(d + 4 * ds, f32x4.sub(a, b));
  v128.store(d + 5 * ds, g2);
}

/** A (= (Aᵀ)ᵀ) on 4 vectors at s (stride ss) into 6 at d (stride ds). */
// @ts-ignore: decorator
@inline
function a(s: usize, ss: usize, d: usize, ds: usize): void {
  const y0 = v128.load(s);
  const y1 = v128.load(s + ss);
  const y2 = v128.load(s + 2 * ss);
  const y3 = v128.load(s + 3 * ss);
  const e = f32x4.add(y0, y2);
  const o = f32x4.add(y1, y3);
  const e2 = f32x4.add(y0, f32x4.mul(f32x4.splat(4), y2));
  const o2 = f32x4.mul(f32x4.splat(2), f32x4.add(y1, f32x4.mul(f32x4.splat(4), y3)));
  v128.store(d, y0);
  v128.store(d + ds, f32x4.add(e, o)); // y0 + y1 + y2 + y3
  v128.store(d + 2 * ds, f32x4.sub(e, o)); // y0 − y1 + y2 − y3
  v128.store(d + 3 * ds, f32x4.add(e2, o2)); // y0 + 2 y1 + 4 y2 + 8 y3
  v128.store(d + 4 * ds, f32x4.sub(e2, o2)); // y0 − 2 y1 + 4 y2 − 8 y3
  v128.store(d + 5 * ds, y3);
}

/** Gᵀ on 6 vectors at s (stride ss) into 3 at d (stride ds). */
// @ts-ignore: decorator
@inline
function gt(s: usize, ss: usize, d: usize, ds: usize): void {
  const s0 = v128.load(s);
  const s1 = v128.load(s + ss);
  const s2 = v128.load(s + 2 * ss);
  const s3 = v128.load(s + 3 * ss);
  const s4 = v128.load(s + 4 * ss);
  const s5 = v128.load(s + 5 * ss);
  const p12 = f32x4.add(s1, s2);
  const m12 = f32x4.sub(s1, s2);
  const p34 = f32x4.add(s3, s4);
  const m34 = f32x4.sub(s3, s4);
  const sixth = f32x4.splat(<f32>(1.0 / 6.0));
  // s0/4 − (s1 + s2)/6 + (s3 + s4)/24
  v128.store(d, f32x4.add(f32x4.sub(f32x4.mul(s0, f32x4.splat(0.25)), f32x4.mul(p12, sixth)), f32x4.mul(p34, f32x4.splat(<f32>(1.0 / 24.0)))));
  // −(s1 − s2)/6 + (s3 − s4)/12
  v128.store(d + ds, f32x4.sub(f32x4.mul(m34, f32x4.splat(<f32>(1.0 / 12.0))), f32x4.mul(m12, sixth)));
  // (s3 + s4 − s1 − s2)/6 + s5
  v128.store(d + 2 * ds, f32x4.add(f32x4.mul(f32x4.sub(p34, p12), sixth), s5));
}

/** Bᵀ d B of the 6×6 tile d at src (row stride rs, column stride cs bytes) into ξ = 6i + j at dst + ξ·ds. */
export function inputTile(src: usize, rs: usize, cs: usize, dst: usize, ds: usize, tmp: usize): void {
  for (let j: usize = 0; j < 6; j++) bt(src + j * cs, rs, tmp + j * 16, ROW);
  for (let i: usize = 0; i < 6; i++) bt(tmp + i * ROW, 16, dst + i * 6 * ds, ds);
}

/**
 * Aᵀ M A of the 36 vectors M[ξ] at src + ξ·ss: the 4×4 outputs, of which rows < `rows`, columns < `cols` and
 * lanes < `lanes` are stored at dst + u·rs + v·cs.
 */
export function outputTile(src: usize, ss: usize, dst: usize, rs: usize, cs: usize, rows: i32, cols: i32, lanes: i32, tmp: usize): void {
  for (let j: usize = 0; j < 6; j++) at(src + j * ss, 6 * ss, tmp + j * 16, ROW);
  if (rows == 4 && cols == 4 && lanes == 4) {
    for (let u: usize = 0; u < 4; u++) at(tmp + u * ROW, 16, dst + u * rs, cs);
    return;
  }
  const out = tmp + 4 * ROW;
  for (let u: usize = 0; u < <usize>rows; u++) {
    at(tmp + u * ROW, 16, out, 16);
    for (let v: usize = 0; v < <usize>cols; v++) storeLanes(dst + u * rs + v * cs, v128.load(out + v * 16), lanes);
  }
}

/** G g Gᵀ of the 3×3 filter g (9 vectors at src, row-major) into ξ at dst + ξ·ds. */
export function filterTile(src: usize, dst: usize, ds: usize, tmp: usize): void {
  for (let j: usize = 0; j < 3; j++) g(src + j * 16, 48, tmp + j * 16, ROW);
  for (let i: usize = 0; i < 6; i++) g(tmp + i * ROW, 16, dst + i * 6 * ds, ds);
}

/** A dY Aᵀ of the 4×4 output-gradient tile at src (row stride rs, column stride cs) into ξ at dst + ξ·ds. */
export function gradTile(src: usize, rs: usize, cs: usize, dst: usize, ds: usize, tmp: usize): void {
  for (let v: usize = 0; v < 4; v++) a(src + v * cs, rs, tmp + v * 16, ROW);
  for (let i: usize = 0; i < 6; i++) a(tmp + i * ROW, 16, dst + i * 6 * ds, ds);
}

/** Gᵀ S G of the 36 vectors S[ξ] at src + ξ·ss: the 3×3 filter gradient, row-major at dst + (3i + j)·16. */
export function filterGradTile(src: usize, ss: usize, dst: usize, tmp: usize): void {
  for (let j: usize = 0; j < 6; j++) gt(src + j * ss, 6 * ss, tmp + j * 16, ROW);
  for (let i: usize = 0; i < 3; i++) gt(tmp + i * ROW, 16, dst + i * 48, 16);
}

/** Stores the first n (1..4) lanes of v at p. */
// @ts-ignore: decorator
@inline
function storeLanes(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
  } else {
    store<f32>(p, f32x4.extract_lane(v, 0));
    if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
    if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
  }
}
